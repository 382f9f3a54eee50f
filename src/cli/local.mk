# The qgate command-line tool: main.c dispatches to one file per command.
qgate_SOURCES += src/cli/cli.h src/cli/main.c src/cli/cmd_devices.c src/cli/cmd_train.c src/cli/cmd_bench.c src/cli/cmd_tune.c
