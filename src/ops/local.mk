# src/ops: elementwise kernels and reductions (cl/eltwise.cl, cl/reduce.cl).
# Convolution and the layer kernels have their own fragments beside this
# one (conv.mk, layers.mk); Makefile.am includes all three.
libqgate_la_SOURCES += src/ops/eltwise.h src/ops/eltwise.c src/ops/reduce.h src/ops/reduce.c
CL_FILES += cl/eltwise.cl cl/reduce.cl
