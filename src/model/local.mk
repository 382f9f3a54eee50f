# Models: graph of nodes over an activation arena, node types, builders.
libqgate_la_SOURCES += \
	src/core/rng.h src/core/rng.c \
	src/model/graph.h src/model/graph.c src/model/nodes.h src/model/nodes.c \
	src/model/nodes_quant.h src/model/nodes_quant.c \
	src/model/resnet.h src/model/resnet.c \
	src/train/optim.h src/train/optim.c src/train/checkpoint.h src/train/checkpoint.c \
	src/train/trainer.h src/train/trainer.c src/train/bench.h src/train/bench.c

check_PROGRAMS += tests/test_model
tests_test_model_SOURCES = tests/test_model.c
tests_test_model_CFLAGS = $(TEST_CFLAGS)
tests_test_model_LDADD = $(TEST_LDADD)
TESTS += tests/test_model
