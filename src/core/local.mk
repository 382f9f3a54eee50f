# src/core: status codes and last-error text, file I/O helpers, the RNG.
# The lowest layer: it includes no header of src/ but its own.
libqgate_la_SOURCES += \
	src/core/error.h src/core/status.c \
	src/core/fileio.h src/core/fileio.c \
	src/core/rng.h src/core/rng.c \
	src/core/fault.h src/core/fault.c
qgateinc_HEADERS += include/qgate/status.h
