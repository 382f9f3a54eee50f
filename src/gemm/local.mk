# src/gemm: the one place CLBlast is called (SGEMM), and its tuned Xgemm
# parameters applied through CLBlastOverrideParameters.
libqgate_la_SOURCES += src/gemm/gemm.h src/gemm/gemm.c src/gemm/gemm_params.c
