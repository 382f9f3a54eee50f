#include "config.h"
#include "cli/cli.h"
int qg_cli_plot(int argc, char **argv) { (void)argc; (void)argv; return 2; }
