# PyTorch interop: the safe pickle subset, .pth containers (libzip), name
# mapping to qgate's models and the conversion to safetensors checkpoints,
# and the checkpoint view behind qgate inspect and qgate plot.
libqgate_la_SOURCES += \
	src/interop/pickle.h src/interop/pickle.c src/interop/pth.h src/interop/pth.c \
	src/interop/convert.h src/interop/convert.c src/interop/ckview.h src/interop/ckview.c \
	src/interop/convert_bsq.h src/interop/convert_bsq.c
QG_LIB_DEPS += $(LIBZIP_LIBS)
AM_CFLAGS += $(LIBZIP_CFLAGS)

check_PROGRAMS += tests/test_pth
tests_test_pth_SOURCES = tests/test_pth.c
tests_test_pth_CFLAGS = $(TEST_CFLAGS)
tests_test_pth_LDADD = $(TEST_LDADD)
TESTS += tests/test_pth
EXTRA_DIST += tests/tools/gen_pth_fixtures.py tests/tools/check_pth_resnet32.py \
	tests/data/pth/tiny_legacy.pth tests/data/pth/tiny_zip.pth tests/data/pth/tiny_expected.json \
	tests/data/pth/nested_legacy.pth tests/data/pth/nested_zip.pth \
	tests/data/pth/evil_legacy.pth tests/data/pth/evil_zip.pth tests/data/pth/model_legacy.pth \
	tests/data/pth/resnet32b_legacy.pth tests/data/pth/resnet32b_check.safetensors \
	tests/data/pth/bsq_zip.pth
