# src/ref: the plain-C oracles of the kernels, used by the tests, the
# tuner's checks and `qgate selfcheck`. ref_conv.c is listed with the
# convolution in src/ops/conv.mk.
libqgate_la_SOURCES += \
	src/ref/ref_eltwise.h src/ref/ref_eltwise.c \
	src/ref/ref_layers.h src/ref/ref_layers.c \
	src/ref/ref_quant.h src/ref/ref_quant.c \
	src/ref/ref_cg.h src/ref/ref_cg.c \
	src/ref/ref_psgd.h src/ref/ref_psgd.c \
	src/ref/ref_bsq.h src/ref/ref_bsq.c
