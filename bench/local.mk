# Benchmarks: scripts that compare qgate with PyTorch on the same machine.
# Never run by make check; see README "Benchmarks".
EXTRA_DIST += bench/compare_pytorch.sh bench/pytorch_resnet.py bench/pytorch_pg_resnet.py bench/pytorch_cg_resnet.py \
	bench/speed_report.sh bench/psgd_ab.sh bench/bsq_step.sh
# Example shapes files for qgate tune --shapes FILE: ResNet-20's 3x3 convs
# on 1x28x28 (Fashion-MNIST, qgate train's default) and 3x32x32 (CIFAR).
EXTRA_DIST += bench/shapes/resnet20.json bench/shapes/resnet20_cifar.json

# Kernel-level probes, always built so they cannot rot, never run by make
# check: the device's peak FMA rate, the ResNet-20 convolutions and batch norms.
noinst_PROGRAMS += bench/peak_flops bench/bench_conv bench/bench_bn
bench_peak_flops_SOURCES = bench/peak_flops.c
bench_peak_flops_LDADD = libqgate_internal.la $(OPENCL_LIBS) -lm
bench_bench_conv_SOURCES = bench/bench_conv.c bench/bench_util.h
bench_bench_conv_LDADD = libqgate_internal.la $(OPENCL_LIBS) -lm
bench_bench_bn_SOURCES = bench/bench_bn.c bench/bench_util.h
bench_bench_bn_LDADD = libqgate_internal.la $(OPENCL_LIBS)
# Grouped convs (CG's base path) on the direct kernels, im2col + GEMM and
# the ungrouped direct conv, in alternating runs.
noinst_PROGRAMS += bench/bench_gconv
bench_bench_gconv_SOURCES = bench/bench_gconv.c bench/bench_util.h
bench_bench_gconv_LDADD = libqgate_internal.la $(OPENCL_LIBS)

# JPEG loader throughput against torchvision (same photos, same threads).
noinst_PROGRAMS += bench/bench_jpeg
bench_bench_jpeg_SOURCES = bench/bench_jpeg.c
bench_bench_jpeg_LDADD = libqgate_internal.la $(OPENCL_LIBS)
EXTRA_DIST += bench/pytorch_shufflenet.py bench/compare_shufflenet.sh
EXTRA_DIST += bench/make_photo_folder.sh bench/torchvision_loader.py bench/compare_jpeg.sh
EXTRA_DIST += bench/skip_pays.sh

# The gradient allreduce of data-parallel training for a parameter count
# (mpirun -np N bench/bench_allreduce; README "Several devices").
noinst_PROGRAMS += bench/bench_allreduce
bench_bench_allreduce_SOURCES = bench/bench_allreduce.c
bench_bench_allreduce_LDADD = libqgate_internal.la $(OPENCL_LIBS) -lm

# ProQHA's candidate scoring: candidates per second (bench/bench_pq_score.c).
noinst_PROGRAMS += bench/bench_pq_score
bench_bench_pq_score_SOURCES = bench/bench_pq_score.c
bench_bench_pq_score_LDADD = libqgate_internal.la $(OPENCL_LIBS) -lm

# The output-masked conv (tiles and per-output gather) against the dense
# conv it replaces, at given gate densities (docs/gate_skipping.md).
noinst_PROGRAMS += bench/bench_convm
bench_bench_convm_SOURCES = bench/bench_convm.c bench/bench_util.h
bench_bench_convm_LDADD = libqgate_internal.la $(OPENCL_LIBS) -lm
