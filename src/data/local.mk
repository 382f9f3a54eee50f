# src/data: datasets (IDX, CIFAR binary) and the threaded batch loader, with
# their tests; the safetensors test is here too (its source is listed in
# src/model/local.mk).
libqgate_la_SOURCES += \
	src/data/dataset.h src/data/dataset.c src/data/idx.c src/data/cifar.c \
	src/data/loader.c

check_PROGRAMS += tests/test_data tests/test_safetensors
tests_test_data_SOURCES = tests/test_data.c
tests_test_data_CFLAGS = $(TEST_CFLAGS) $(ZLIB_CFLAGS)
tests_test_data_LDADD = $(TEST_LDADD) $(ZLIB_LIBS)
tests_test_safetensors_SOURCES = tests/test_safetensors.c
tests_test_safetensors_CFLAGS = $(TEST_CFLAGS)
tests_test_safetensors_LDADD = $(TEST_LDADD)
TESTS += tests/test_data tests/test_safetensors

# Cross-check with PyTorch by hand (not run by make check).
EXTRA_DIST += tests/tools/check_safetensors_torch.py tests/tools/torch_eval_checkpoint.py
