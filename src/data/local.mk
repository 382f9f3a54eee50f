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

# JPEG class folders (folder.c) decoded with TurboJPEG (jpeg.c); fixtures
# under tests/data/jpeg come from make_fixtures.sh there.
libqgate_la_SOURCES += src/data/jpeg.h src/data/jpeg.c src/data/folder.c src/data/export.c
check_PROGRAMS += tests/test_jpeg
tests_test_jpeg_SOURCES = tests/test_jpeg.c
tests_test_jpeg_CFLAGS = $(TEST_CFLAGS)
tests_test_jpeg_LDADD = $(TEST_LDADD)
TESTS += tests/test_jpeg
EXTRA_DIST += tests/data/jpeg/make_fixtures.sh tests/data/jpeg/rgb.jpg tests/data/jpeg/gray.jpg \
	tests/data/jpeg/cmyk.jpg tests/data/jpeg/solid_rgb.jpg tests/data/jpeg/solid_cmyk.jpg \
	tests/data/jpeg/truncated.jpg tests/data/jpeg/empty.jpg tests/data/jpeg/notjpeg.jpg \
	tests/data/jpeg/rgb.pil.rgb tests/data/jpeg/gray.pil.rgb tests/data/jpeg/cmyk.pil.rgb \
	tests/data/jpeg/rgb_20x15.pil.rgb tests/data/jpeg/rgb_crop16.pil.rgb \
	tests/data/jpeg/rgb_eval24.pil.rgb tests/data/jpeg/rgb_9x7.pil.rgb
