/* Placeholder until this subcommand lands in this session's work. */
#include <stdio.h>
#include "commands.h"
int cmd_detokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "quarrel detokenize: not built yet\n");
    return 1;
}
