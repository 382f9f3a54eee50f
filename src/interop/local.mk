# PyTorch interop: the safe pickle subset, .pth containers (libzip), name
# mapping to qgate's models and the conversion to safetensors checkpoints.
libqgate_la_SOURCES += \
	src/interop/pickle.h src/interop/pickle.c src/interop/pth.h src/interop/pth.c
libqgate_la_LIBADD += $(LIBZIP_LIBS)
AM_CFLAGS += $(LIBZIP_CFLAGS)
libqgate_la_SOURCES += src/interop/convert.h src/interop/convert.c
