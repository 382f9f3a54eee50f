# src/ops: elementwise kernels and reductions (cl/eltwise.cl, cl/reduce.cl).
# Convolution and the layer kernels have their own fragments beside this
# one (conv.mk, layers.mk); Makefile.am includes all three.
libqgate_la_SOURCES += src/ops/eltwise.h src/ops/eltwise.c src/ops/reduce.h src/ops/reduce.c
CL_FILES += cl/eltwise.cl cl/reduce.cl
# The output-masked 3x3 conv of gated layers (cl/conv_masked.cl) and its
# C oracle (test: tests/test_conv_masked, in tests/local.mk).
libqgate_la_SOURCES += src/ops/conv_masked.h src/ops/conv_masked.c \
	src/ref/ref_conv_masked.h src/ref/ref_conv_masked.c
CL_FILES += cl/conv_masked.cl
