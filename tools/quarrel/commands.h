/* The quarrel CLI's subcommands: one file each, cmd_<name>.c. Each returns the process
 * exit code (0 ok, 1 error with a one-line message on stderr, 2 usage error). */
#ifndef QR_TOOLS_COMMANDS_H
#define QR_TOOLS_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_diff(int argc, char **argv);

#endif
