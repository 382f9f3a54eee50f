# src/ops/shuffle.mk: the ShuffleNet layers -- channel split/concat/shuffle
# (src/ops/chan.h) and depthwise 3x3 convolution (src/ops/dwconv.h) --
# with their kernels, C oracles and tests.
libqgate_la_SOURCES += src/ops/chan.h src/ops/chan.c src/ref/ref_chan.h src/ref/ref_chan.c
CL_FILES += cl/chan.cl

check_PROGRAMS += tests/test_chan
tests_test_chan_SOURCES = tests/test_chan.c
tests_test_chan_CFLAGS = $(TEST_CFLAGS)
tests_test_chan_LDADD = $(TEST_LDADD)
TESTS += tests/test_chan
