# src/ops: elementwise kernels and reductions (cl/eltwise.cl, cl/reduce.cl).
# Convolution and the layer kernels have their own fragments beside this
# one (conv.mk, layers.mk); Makefile.am includes all three.
libqgate_la_SOURCES += src/ops/eltwise.h src/ops/eltwise.c src/ops/reduce.h src/ops/reduce.c
CL_FILES += cl/eltwise.cl cl/reduce.cl
# The output-masked 3x3 conv of gated layers (cl/conv_masked.cl), its C
# oracle and test.
libqgate_la_SOURCES += src/ops/conv_masked.h src/ops/conv_masked.c \
	src/ref/ref_conv_masked.h src/ref/ref_conv_masked.c
CL_FILES += cl/conv_masked.cl
check_PROGRAMS += tests/test_conv_masked
tests_test_conv_masked_SOURCES = tests/test_conv_masked.c
tests_test_conv_masked_CFLAGS = $(TEST_CFLAGS)
tests_test_conv_masked_LDADD = $(TEST_LDADD)
TESTS += tests/test_conv_masked
