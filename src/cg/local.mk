# src/cg: Channel Gating kernels (src/cg/cg.c, cl/cg.cl) and their test;
# their C oracles are listed in src/ref/local.mk. The CGConv2d node lives
# in src/model/nodes_cg.c (src/model/local.mk).
libqgate_la_SOURCES += src/cg/cg.h src/cg/cg.c
CL_FILES += cl/cg.cl

check_PROGRAMS += tests/test_cg
tests_test_cg_SOURCES = tests/test_cg.c
tests_test_cg_CFLAGS = $(TEST_CFLAGS)
tests_test_cg_LDADD = $(TEST_LDADD)
TESTS += tests/test_cg
