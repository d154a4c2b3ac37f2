/* Placeholder until this subcommand lands in this session's work. */
#include <stdio.h>
#include "commands.h"
int cmd_inspect(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "quarrel inspect: not built yet\n");
    return 1;
}
