# src/tune: `qgate tune` (search, verification against the C references,
# timing; the database it writes is src/cl/tunedb.c), its cases per kernel
# program, shapes files, `qgate bench kernels` and `qgate selfcheck`.
libqgate_la_SOURCES += \
	src/tune/tuner.h src/tune/tuner.c src/tune/cases.h src/tune/cases.c \
	src/tune/case_util.c src/tune/cases_quant.c src/tune/cases_layers.c src/tune/cases_cg.c src/tune/cases_psgd.c src/tune/cases_bsq.c \
	src/tune/cases_masked.c \
	src/tune/bench_kernels.c src/tune/case_conv.c src/tune/shapes_file.h \
	src/tune/shapes_file.c src/tune/cases_shapes.c src/tune/convm_pays.c \
	src/tune/selfcheck.c
