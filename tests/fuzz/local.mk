# tests/fuzz: hardening tests (issue 23) and libFuzzer targets for every
# parser that reads user files. test_harden is an ordinary Criterion test.
check_PROGRAMS += tests/test_harden
tests_test_harden_SOURCES = tests/test_harden.c
tests_test_harden_CFLAGS = $(TEST_CFLAGS)
tests_test_harden_LDADD = $(TEST_LDADD)
TESTS += tests/test_harden
