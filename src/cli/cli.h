/* src/cli/cli.h: subcommands of the qgate CLI; each returns an exit code. */
#ifndef QG_CLI_H
#define QG_CLI_H

int qg_cli_devices(int argc, char **argv);
int qg_cli_selfcheck(int argc, char **argv);
int qg_cli_train(int argc, char **argv);
int qg_cli_eval(int argc, char **argv);
int qg_cli_search(int argc, char **argv);
int qg_cli_bench(int argc, char **argv);
int qg_cli_tune(int argc, char **argv);
int qg_cli_convert(int argc, char **argv);
int qg_cli_inspect(int argc, char **argv);
int qg_cli_plot(int argc, char **argv);
int qg_cli_export_images(int argc, char **argv);
int qg_cli_export_model(int argc, char **argv);

/* Shared helper: "--device X" / "--device=X" lookup for simple commands. */
const char *qg_cli_device_arg(int argc, char **argv);

#endif
