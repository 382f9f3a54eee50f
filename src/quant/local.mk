# src/quant: quantizers, PACT and the PG gate (src/quant/quant.c, cl/quant.cl)
# and their test; their C oracles are listed in src/ref/local.mk.
libqgate_la_SOURCES += src/quant/quant.h src/quant/quant.c
CL_FILES += cl/quant.cl

check_PROGRAMS += tests/test_quant
tests_test_quant_SOURCES = tests/test_quant.c
tests_test_quant_CFLAGS = $(TEST_CFLAGS)
tests_test_quant_LDADD = $(TEST_LDADD)
TESTS += tests/test_quant
