# src/dist: the process group of a data-parallel run (MPI or one process).
libqgate_la_SOURCES += src/dist/dist.h src/dist/dist.c
