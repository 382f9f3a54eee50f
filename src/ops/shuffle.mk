# src/ops/shuffle.mk: the ShuffleNet layers -- channel split/concat/shuffle
# (src/ops/chan.h) and depthwise 3x3 convolution (src/ops/dwconv.h) --
# with their kernels, C oracles and tests.
libqgate_la_SOURCES += src/ops/chan.h src/ops/chan.c src/ref/ref_chan.h src/ref/ref_chan.c
# Their tune cases (qgate tune): ShuffleNet v2 stage-2 shapes.
libqgate_la_SOURCES += src/tune/cases_shuffle.c
CL_FILES += cl/chan.cl

check_PROGRAMS += tests/test_chan
tests_test_chan_SOURCES = tests/test_chan.c
tests_test_chan_CFLAGS = $(TEST_CFLAGS)
tests_test_chan_LDADD = $(TEST_LDADD)
TESTS += tests/test_chan

libqgate_la_SOURCES += src/ops/dwconv.h src/ops/dwconv.c src/ref/ref_dwconv.h \
	src/ref/ref_dwconv.c
CL_FILES += cl/dwconv.cl
check_PROGRAMS += tests/test_dwconv
tests_test_dwconv_SOURCES = tests/test_dwconv.c
tests_test_dwconv_CFLAGS = $(TEST_CFLAGS)
tests_test_dwconv_LDADD = $(TEST_LDADD)
TESTS += tests/test_dwconv
noinst_PROGRAMS += bench/bench_dwconv
bench_bench_dwconv_SOURCES = bench/bench_dwconv.c bench/bench_util.h
bench_bench_dwconv_LDADD = libqgate_internal.la $(OPENCL_LIBS) -lm

# 'SAME'-padded max pool (extends src/ops/pool.c, cl/pool.cl) and GAP 7x7.
libqgate_la_SOURCES += src/ref/ref_pool_same.h src/ref/ref_pool_same.c
check_PROGRAMS += tests/test_pool_same
tests_test_pool_same_SOURCES = tests/test_pool_same.c
tests_test_pool_same_CFLAGS = $(TEST_CFLAGS)
tests_test_pool_same_LDADD = $(TEST_LDADD)
TESTS += tests/test_pool_same
