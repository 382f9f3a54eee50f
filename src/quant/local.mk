# src/quant: quantizers, PACT and the PG gate (src/quant/quant.c, cl/quant.cl)
# and their test; their C oracles are listed in src/ref/local.mk.
libqgate_la_SOURCES += src/quant/quant.h src/quant/quant.c src/quant/psgd.h src/quant/psgd.c \
	src/quant/bsq.h src/quant/bsq.c
CL_FILES += cl/quant.cl cl/psgd.cl cl/bsq.cl

check_PROGRAMS += tests/test_quant
tests_test_quant_SOURCES = tests/test_quant.c
tests_test_quant_CFLAGS = $(TEST_CFLAGS)
tests_test_quant_LDADD = $(TEST_LDADD)
TESTS += tests/test_quant

check_PROGRAMS += tests/test_psgd
tests_test_psgd_SOURCES = tests/test_psgd.c
tests_test_psgd_CFLAGS = $(TEST_CFLAGS)
tests_test_psgd_LDADD = $(TEST_LDADD)
TESTS += tests/test_psgd
EXTRA_DIST += tests/data/golden/psgd_step.json tests/tools/psgd_torch.py

check_PROGRAMS += tests/test_bsq
tests_test_bsq_SOURCES = tests/test_bsq.c
tests_test_bsq_CFLAGS = $(TEST_CFLAGS)
tests_test_bsq_LDADD = $(TEST_LDADD)
TESTS += tests/test_bsq
EXTRA_DIST += tests/data/golden/bsq_bitconv_step.json tests/tools/gen_bsq_golden.py

check_PROGRAMS += tests/test_psgd_act
tests_test_psgd_act_SOURCES = tests/test_psgd_act.c
tests_test_psgd_act_CFLAGS = $(TEST_CFLAGS)
tests_test_psgd_act_LDADD = $(TEST_LDADD)
TESTS += tests/test_psgd_act
