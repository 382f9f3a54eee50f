# Foundation: core, OpenCL layer, tensor, GEMM, basic ops and references.
libqgate_la_SOURCES += \
	src/core/error.h src/core/status.c \
	src/core/fileio.h src/core/fileio.c \
	src/cl/ctx.h src/cl/device.c src/cl/program.c src/cl/sources.c \
	src/cl/binary_cache.c src/cl/launch.c src/cl/kprof.c src/cl/registry.c src/cl/selfcheck.c \
	src/tensor/tensor_impl.h src/tensor/tensor.c \
	src/gemm/gemm.h src/gemm/gemm.c src/gemm/gemm_params.c \
	src/ops/eltwise.h src/ops/eltwise.c src/ops/reduce.h src/ops/reduce.c \
	src/ref/ref_eltwise.h src/ref/ref_eltwise.c \
	src/tune/tunedb.h src/tune/tunedb.c src/tune/tuner.h src/tune/tuner.c src/tune/cases.c \
	src/tune/cases.h src/tune/case_util.c src/tune/cases_quant.c src/tune/cases_layers.c src/tune/cases_cg.c \
	src/tune/bench_kernels.c src/tune/case_conv.c src/tune/shapes_file.h src/tune/shapes_file.c \
	src/tune/cases_shapes.c
qgateinc_HEADERS += include/qgate/status.h include/qgate/device.h include/qgate/tensor.h
CL_FILES += cl/eltwise.cl cl/reduce.cl
