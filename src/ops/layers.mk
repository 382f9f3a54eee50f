# src/ops/layers.mk: batch norm, pooling, option-A shortcut, softmax
# cross-entropy and optimizer steps (src/ops/layers.h), their kernels and
# tests; their C oracles are listed in src/ref/local.mk.
libqgate_la_SOURCES += src/ops/layers.h src/ops/bn.c src/ops/pool.c src/ops/shortcut.c \
	src/ops/loss.c src/ops/optim.c src/ops/bn_sync.h src/ops/bn_sync.c
CL_FILES += cl/bn.cl cl/pool.cl cl/shortcut.cl cl/loss.cl cl/optim.cl

check_PROGRAMS += tests/test_bn tests/test_pool tests/test_loss tests/test_optim
tests_test_bn_SOURCES = tests/test_bn.c
tests_test_bn_CFLAGS = $(TEST_CFLAGS)
tests_test_bn_LDADD = $(TEST_LDADD)
tests_test_pool_SOURCES = tests/test_pool.c
tests_test_pool_CFLAGS = $(TEST_CFLAGS)
tests_test_pool_LDADD = $(TEST_LDADD)
tests_test_loss_SOURCES = tests/test_loss.c
tests_test_loss_CFLAGS = $(TEST_CFLAGS)
tests_test_loss_LDADD = $(TEST_LDADD)
tests_test_optim_SOURCES = tests/test_optim.c
tests_test_optim_CFLAGS = $(TEST_CFLAGS)
tests_test_optim_LDADD = $(TEST_LDADD)
TESTS += tests/test_bn tests/test_pool tests/test_loss tests/test_optim
