# src/train: optimizers, checkpoints, the training loop and `bench train`.
libqgate_la_SOURCES += \
	src/train/optim.h src/train/optim.c src/train/checkpoint.h src/train/checkpoint.c \
	src/train/trainer.h src/train/trainer.c src/train/bench.h src/train/bench.c \
	src/train/dist_train.h src/train/dist_train.c \
	src/train/search.h src/train/search.c

check_PROGRAMS += tests/test_proqha
tests_test_proqha_SOURCES = tests/test_proqha.c
tests_test_proqha_CFLAGS = $(TEST_CFLAGS)
tests_test_proqha_LDADD = $(TEST_LDADD)
TESTS += tests/test_proqha
