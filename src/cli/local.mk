# The qgate command-line tool: main.c dispatches to one file per command.
qgate_SOURCES += src/cli/cli.h src/cli/main.c src/cli/cmd_devices.c src/cli/cmd_train.c src/cli/cmd_bench.c src/cli/cmd_tune.c \
	src/cli/model_flags.h src/cli/model_flags.c
qgate_SOURCES += src/cli/cmd_convert.c src/cli/cmd_inspect.c src/cli/cmd_plot.c
qgate_SOURCES += src/cli/cmd_export.c src/cli/cmd_search.c

check_PROGRAMS += tests/test_cli
tests_test_cli_SOURCES = tests/test_cli.c
tests_test_cli_CFLAGS = $(TEST_CFLAGS)
tests_test_cli_LDADD = $(TEST_LDADD)
TESTS += tests/test_cli
