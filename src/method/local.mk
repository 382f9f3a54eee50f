# src/method: the training methods (one descriptor file each, registered in
# methods.def), the method configuration and the hook dispatch.
libqgate_la_SOURCES += src/method/method.h src/method/method.c src/method/methods.def \
	src/method/params.h src/method/gating.h src/method/gating.c \
	src/method/m_quant.c src/method/m_pact.c src/method/m_pg.c src/method/m_pg.h \
	src/method/m_cg.c src/method/m_psgd.c src/method/m_bsq.c \
	src/method/m_proqha.h src/method/m_proqha.c
qgateinc_HEADERS += include/qgate/method.h include/qgate/train.h

check_PROGRAMS += tests/test_method
tests_test_method_SOURCES = tests/test_method.c
tests_test_method_CFLAGS = $(TEST_CFLAGS)
tests_test_method_LDADD = $(TEST_LDADD)
TESTS += tests/test_method

check_PROGRAMS += tests/test_bsq_model
tests_test_bsq_model_SOURCES = tests/test_bsq_model.c
tests_test_bsq_model_CFLAGS = $(TEST_CFLAGS)
tests_test_bsq_model_LDADD = $(TEST_LDADD)
TESTS += tests/test_bsq_model
