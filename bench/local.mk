# Benchmarks: scripts that compare qgate with PyTorch on the same machine.
# Never run by make check; see README "Benchmarks".
EXTRA_DIST += bench/compare_pytorch.sh bench/pytorch_resnet.py bench/pytorch_pg_resnet.py
