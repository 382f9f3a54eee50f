# Criterion tests: one program per area, each kernel against its C twin.
check_LIBRARIES += tests/support/libqgtest.a
tests_support_libqgtest_a_SOURCES = tests/support/support.h tests/support/support.c
tests_support_libqgtest_a_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)

TEST_LDADD = tests/support/libqgtest.a libqgate_internal.la $(CRITERION_LIBS) $(OPENCL_LIBS) \
	$(JANSSON_LIBS) -lm
TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) -I$(top_srcdir)/tests

check_PROGRAMS += tests/test_device tests/test_program tests/test_eltwise tests/test_tune
tests_test_device_SOURCES = tests/test_device.c
tests_test_device_CFLAGS = $(TEST_CFLAGS)
tests_test_device_LDADD = $(TEST_LDADD)
tests_test_program_SOURCES = tests/test_program.c
tests_test_program_CFLAGS = $(TEST_CFLAGS)
tests_test_program_LDADD = $(TEST_LDADD)
tests_test_eltwise_SOURCES = tests/test_eltwise.c
tests_test_eltwise_CFLAGS = $(TEST_CFLAGS)
tests_test_eltwise_LDADD = $(TEST_LDADD)
tests_test_tune_SOURCES = tests/test_tune.c
tests_test_tune_CFLAGS = $(TEST_CFLAGS)
tests_test_tune_LDADD = $(TEST_LDADD)

TESTS += tests/test_device tests/test_program tests/test_eltwise tests/test_tune

check_PROGRAMS += tests/test_tune_shapes
tests_test_tune_shapes_SOURCES = tests/test_tune_shapes.c
tests_test_tune_shapes_CFLAGS = $(TEST_CFLAGS)
tests_test_tune_shapes_LDADD = $(TEST_LDADD)
TESTS += tests/test_tune_shapes

# Kernel caches stay inside the build tree (distcheck's srcdir is
# read-only, and a user's ~/.cache must not be touched by tests).
AM_TESTS_ENVIRONMENT = \
	QGATE_CACHE_DIR='$(abs_top_builddir)/tests/cache/qgate'; export QGATE_CACHE_DIR; \
	POCL_CACHE_DIR='$(abs_top_builddir)/tests/cache/pocl'; export POCL_CACHE_DIR; \
	QG_TEST_DATA='$(abs_top_srcdir)/tests/data'; export QG_TEST_DATA; \
	QGATE_TUNE_DB='$(abs_top_builddir)/tests/cache/tuning.json'; export QGATE_TUNE_DB; \
	QGATE_DATA_DIR='$(abs_top_srcdir)/data'; export QGATE_DATA_DIR; \
	TMPDIR='$(abs_top_builddir)/tests/cache'; export TMPDIR; \
	$(MKDIR_P) '$(abs_top_builddir)/tests/cache';

clean-local: clean-test-cache
clean-test-cache:
	-rm -rf tests/cache
.PHONY: clean-test-cache

# Data-parallel training (src/dist, issue 25): 2 MPI processes against 1
# (tests/test_dist.sh; skipped without MPI). tests/tools/dist_cmp
# compares checkpoints (a tool; the script asserts on its exit status).
check_PROGRAMS += tests/tools/dist_cmp
tests_tools_dist_cmp_SOURCES = tests/tools/dist_cmp.c
tests_tools_dist_cmp_LDADD = libqgate_internal.la $(OPENCL_LIBS) $(JANSSON_LIBS) -lm
EXTRA_DIST += tests/test_dist.sh
TESTS += tests/test_dist.sh

check_PROGRAMS += tests/test_pgtf
tests_test_pgtf_SOURCES = tests/test_pgtf.c
tests_test_pgtf_CFLAGS = $(TEST_CFLAGS)
tests_test_pgtf_LDADD = $(TEST_LDADD)
TESTS += tests/test_pgtf
EXTRA_DIST += tests/data/golden/pgtf_s1.json tests/data/golden/pgtf_s2_signed.json \
	tests/data/golden/pgtf_1x1.json tests/tools/gen_pgtf_golden.py

# The output-masked conv of gated layers (src/ops/conv_masked.c).
check_PROGRAMS += tests/test_conv_masked
tests_test_conv_masked_SOURCES = tests/test_conv_masked.c
tests_test_conv_masked_CFLAGS = $(TEST_CFLAGS)
tests_test_conv_masked_LDADD = $(TEST_LDADD)
TESTS += tests/test_conv_masked
