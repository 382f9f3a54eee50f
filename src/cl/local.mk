# src/cl: the OpenCL layer: device and context, program builds and their
# disk cache, the kernel-program registry, the tuning database, typed
# kernel launches and the kernel profile. Above core only.
libqgate_la_SOURCES += \
	src/cl/ctx.h src/cl/kernels.h src/cl/device.c src/cl/program.c src/cl/sources.c \
	src/cl/binary_cache.c src/cl/launch.c src/cl/kprof.c src/cl/registry.c \
	src/cl/tunedb.h src/cl/tunedb.c
qgateinc_HEADERS += include/qgate/device.h
