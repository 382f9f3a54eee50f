#include "config.h"
#include "cli/cli.h"
int qg_cli_inspect(int argc, char **argv) { (void)argc; (void)argv; return 2; }
