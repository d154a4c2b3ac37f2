/* quarrel: one binary, one subcommand per file (tools/quarrel/cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "core/log.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"inspect", cmd_inspect, "print a GGUF file's metadata and tensor table"},
    {"quantize", cmd_quantize, "convert a GGUF model to another block format (llama.cpp's mixes)"},
    {"synth", cmd_synth, "write a random-weight model of a given architecture and shape"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"detokenize", cmd_detokenize, "print the text of token ids"},
    {"run", cmd_run, "generate text from a prompt"},
    {"chat", cmd_chat, "chat with a model through its chat template"},
    {"perplexity", cmd_perplexity, "measure perplexity on a text (llama-perplexity's method)"},
    {"serve", cmd_serve, "serve the model over HTTP with OpenAI's API (continuous batching)"},
    {"bench", cmd_bench, "measure prompt and generation throughput (llama-bench's method)"},
    {"diff", cmd_diff, "run a prompt through two backends op for op and report their errors"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f, "usage: quarrel <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    }
    fprintf(f, "\n'quarrel <command> --help' describes a command's options.\n"
               "Logging: QUARREL_LOG_LEVEL=debug|info|warn|error|off, QUARREL_LOG_FORMAT=text|json.\n");
}

int main(int argc, char **argv) {
    qr_log_init_from_env();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("quarrel 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "quarrel: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
