# tests/fuzz: hardening tests (issue 23) and libFuzzer targets for every
# parser that reads user files. test_harden is an ordinary Criterion test.
check_PROGRAMS += tests/test_harden
tests_test_harden_SOURCES = tests/test_harden.c
tests_test_harden_CFLAGS = $(TEST_CFLAGS)
tests_test_harden_LDADD = $(TEST_LDADD)
TESTS += tests/test_harden

# Fuzz targets: each is the harness plus the parser's own source, both
# built by clang with coverage, ASan and UBSan; everything else comes from
# the (uninstrumented) libqgate_internal. make check runs each NAME.fuzz through
# run-fuzz.sh for $(QG_FUZZ_SECONDS) seconds (skipped without clang).
# (examples/local.mk, included later, adds .sh.)
TEST_EXTENSIONS = .fuzz
FUZZ_LOG_COMPILER = $(SHELL) $(srcdir)/tests/fuzz/run-fuzz.sh
TESTS += tests/fuzz/safetensors.fuzz tests/fuzz/idx.fuzz tests/fuzz/cifar.fuzz \
	tests/fuzz/shapes.fuzz tests/fuzz/tunedb.fuzz tests/fuzz/pth.fuzz tests/fuzz/jpeg.fuzz
EXTRA_DIST += tests/sanitizers/lsan.supp tests/fuzz/run-fuzz.sh tests/fuzz/make_corpus.py \
	tests/fuzz/corpus \
	tests/fuzz/safetensors.fuzz tests/fuzz/idx.fuzz tests/fuzz/cifar.fuzz \
	tests/fuzz/shapes.fuzz tests/fuzz/tunedb.fuzz tests/fuzz/fuzz_safetensors.c \
	tests/fuzz/fuzz_idx.c tests/fuzz/fuzz_cifar.c tests/fuzz/fuzz_shapes.c \
	tests/fuzz/fuzz_tunedb.c tests/fuzz/pth.fuzz tests/fuzz/jpeg.fuzz tests/fuzz/fuzz_pth.c \
	tests/fuzz/fuzz_jpeg.c
AM_TESTS_ENVIRONMENT += QG_FUZZ_ENABLED='$(QG_FUZZ_ENABLED)'; export QG_FUZZ_ENABLED;

if QG_FUZZ
FUZZ_BINS = tests/fuzz/fuzz_safetensors tests/fuzz/fuzz_idx tests/fuzz/fuzz_cifar \
	tests/fuzz/fuzz_shapes tests/fuzz/fuzz_tunedb tests/fuzz/fuzz_pth tests/fuzz/fuzz_jpeg
check_SCRIPTS = $(FUZZ_BINS)
CLEANFILES += $(FUZZ_BINS) tests/fuzz/*.o
FUZZ_FLAGS = -std=gnu11 -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_COMPILE = $(FUZZ_CC) $(DEFS) $(DEFAULT_INCLUDES) $(AM_CPPFLAGS) $(CPPFLAGS) \
	$(OPENCL_CFLAGS) $(JANSSON_CFLAGS) $(ZLIB_CFLAGS) $(LIBZIP_CFLAGS) $(TURBOJPEG_CFLAGS) \
	$(FUZZ_FLAGS) -c
# Linked with the internal convenience library (all qg__ functions); an
# archive member is only pulled for symbols still undefined, so the
# parser's instrumented object stands in for the library's copy.
FUZZ_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CC --mode=link $(FUZZ_CC) $(FUZZ_FLAGS) -o $@
FUZZ_LIBS = libqgate_internal.la $(QG_LIB_DEPS)
FUZZ_RULE = $(MKDIR_P) tests/fuzz && \
	$(FUZZ_COMPILE) -o $@-harness.o $(srcdir)/tests/fuzz/$(@F).c && \
	$(FUZZ_COMPILE) -o $@-parser.o
FUZZ_DEPS = libqgate_internal.la $(top_builddir)/config.h

tests/fuzz/fuzz_safetensors: $(srcdir)/tests/fuzz/fuzz_safetensors.c \
		$(srcdir)/src/model/safetensors.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_RULE) $(srcdir)/src/model/safetensors.c && \
	$(FUZZ_LINK) $@-harness.o $@-parser.o $(FUZZ_LIBS)
tests/fuzz/fuzz_idx: $(srcdir)/tests/fuzz/fuzz_idx.c $(srcdir)/src/data/idx.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_RULE) $(srcdir)/src/data/idx.c && \
	$(FUZZ_LINK) $@-harness.o $@-parser.o $(FUZZ_LIBS)
tests/fuzz/fuzz_cifar: $(srcdir)/tests/fuzz/fuzz_cifar.c $(srcdir)/src/data/cifar.c \
		$(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_RULE) $(srcdir)/src/data/cifar.c && \
	$(FUZZ_LINK) $@-harness.o $@-parser.o $(FUZZ_LIBS)
tests/fuzz/fuzz_shapes: $(srcdir)/tests/fuzz/fuzz_shapes.c $(srcdir)/src/tune/shapes_file.c \
		$(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_RULE) $(srcdir)/src/tune/shapes_file.c && \
	$(FUZZ_LINK) $@-harness.o $@-parser.o $(FUZZ_LIBS)
# The tuning database loader (one path to update if the file moves).
FUZZ_TUNEDB_SRC = $(srcdir)/src/cl/tunedb.c
tests/fuzz/fuzz_tunedb: $(srcdir)/tests/fuzz/fuzz_tunedb.c $(FUZZ_TUNEDB_SRC) $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_RULE) $(FUZZ_TUNEDB_SRC) && \
	$(FUZZ_LINK) $@-harness.o $@-parser.o $(FUZZ_LIBS)
# The .pth reader and its pickle machine, both instrumented.
tests/fuzz/fuzz_pth: $(srcdir)/tests/fuzz/fuzz_pth.c $(srcdir)/src/interop/pth.c \
		$(srcdir)/src/interop/pickle.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_RULE) $(srcdir)/src/interop/pth.c && \
	$(FUZZ_COMPILE) -o $@-pickle.o $(srcdir)/src/interop/pickle.c && \
	$(FUZZ_LINK) $@-harness.o $@-parser.o $@-pickle.o $(FUZZ_LIBS)
tests/fuzz/fuzz_jpeg: $(srcdir)/tests/fuzz/fuzz_jpeg.c $(srcdir)/src/data/jpeg.c $(FUZZ_DEPS)
	$(AM_V_GEN)$(FUZZ_RULE) $(srcdir)/src/data/jpeg.c && \
	$(FUZZ_LINK) $@-harness.o $@-parser.o $(FUZZ_LIBS)
endif
