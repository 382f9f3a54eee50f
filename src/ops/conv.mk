# src/ops/conv.mk: convolution (plan and dispatch, direct kernels, im2col +
# GEMM; cl/conv_direct.cl, cl/im2col.cl) and linear layers, their C oracles
# and their test (see Makefile.am).
libqgate_la_SOURCES += src/ops/conv.h src/ops/conv_impl.h src/ops/conv_plan.c \
	src/ops/conv_direct.c src/ops/conv_gemm.c src/ops/linear.h src/ops/linear.c \
	src/ref/ref_conv.h src/ref/ref_conv.c
CL_FILES += cl/im2col.cl cl/conv_direct.cl
# Shape classes of per-shape tuned parameters (qgate tune --shapes FILE).
libqgate_la_SOURCES += src/ops/conv_shape.c

check_PROGRAMS += tests/test_conv
tests_test_conv_SOURCES = tests/test_conv.c
tests_test_conv_CFLAGS = $(TEST_CFLAGS)
tests_test_conv_LDADD = $(TEST_LDADD)
TESTS += tests/test_conv
