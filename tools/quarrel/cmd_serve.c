/* quarrel serve -m MODEL [options]: the OpenAI-compatible HTTP server (src/server,
 * docs/server.md). Runs until SIGINT or SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_parse.h"
#include "commands.h"
#include "server/server.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel serve -m MODEL [options]\n"
            "\n"
            "Serves the model over HTTP with OpenAI's API (POST /v1/completions,\n"
            "/v1/chat/completions; GET /v1/models, /health, /metrics; POST /tokenize,\n"
            "/detokenize), decoding up to --parallel requests together in each forward pass.\n"
            "docs/server.md describes endpoints, parameters, errors and metrics.\n"
            "\n"
            "  -m, --model FILE          GGUF model (llama, mistral, qwen2, gemma3)\n"
            "  -a, --alias NAME          model name reported to clients (default: file name)\n"
            "  --host ADDR               numeric address to listen on (default 127.0.0.1)\n"
            "  --port N                  TCP port (default 8080; 0 = any free port)\n"
            "  --api-key KEY             require 'Authorization: Bearer KEY' (all but /health);\n"
            "                            also read from $QUARREL_API_KEY\n"
            "  --chat-template NAME      template for chat requests: a name (chatml, gemma,\n"
            "                            llama3, ...) or Jinja source; default: the model's\n"
            "  -c, --ctx-size N          KV cells shared by all sequences, and the longest\n"
            "                            sequence (default 4096)\n"
            "  -t, --threads N           threads (default: all CPUs)\n"
            "  --device DEV              cpu | cuda | auto (default: cuda when a GPU is\n"
            "                            present)\n"
            "  -ngl, --n-gpu-layers N    on CUDA: the last N layers and the output on the GPU,\n"
            "                            the rest on the CPU; 'all' (default) or N >= the\n"
            "                            layer count: everything on the GPU\n"
            "  -np, --parallel N         sequences decoded together (default 4)\n"
            "  -b, --batch-size N        rows per forward pass: decode rows plus prompt\n"
            "                            chunks (default 256)\n"
            "  --max-queue N             requests waiting for a slot before 503 (default 64)\n"
            "  --max-connections N       open connections before 503 (default 128)\n"
            "  --max-body BYTES          largest request body (default 1048576)\n"
            "  --max-prompt-tokens N     longest prompt (default: context size - 1)\n"
            "  --max-tokens N            largest max_tokens a request may ask (default 4096)\n"
            "  --timeout S               idle connection timeout in seconds (default 600)\n"
            CLI_MODEL_HELP
            "  -h, --help                show this help\n"
            "\n"
            "On start it prints 'quarrel serve: listening on http://HOST:PORT (model NAME,\n"
            "device cpu|cuda)' to stdout.\n"
            "Exit codes: 0 stopped by a signal, 1 error (bad model, port in use), 2 usage.\n");
}

static int parse_value(qs_config *c, const char *a, const char *v) {
    int32_t port = c->port, body = (int32_t)c->max_body_bytes;
    int rc = 0;
    if (cli_is(a, "-m", "--model")) c->model_path = v;
    else if (cli_is(a, "-a", "--alias")) c->alias = v;
    else if (cli_is(a, "--host", NULL)) c->host = v;
    else if (cli_is(a, "--api-key", NULL)) c->api_key = v;
    else if (cli_is(a, "--chat-template", NULL)) c->chat_template = v;
    else if (cli_is(a, "--port", NULL)) rc = cli_parse_i32("serve", a, v, 0, 65535, &port);
    else if (cli_is(a, "-c", "--ctx-size")) rc = cli_parse_i32("serve", a, v, 0, 1 << 24, &c->n_ctx);
    else if (cli_is(a, "-t", "--threads")) rc = cli_parse_i32("serve", a, v, 1, 1024, &c->n_threads);
    else if (cli_is(a, "-np", "--parallel")) rc = cli_parse_i32("serve", a, v, 1, 1024, &c->n_parallel);
    else if (cli_is(a, "-b", "--batch-size")) rc = cli_parse_i32("serve", a, v, 1, 1 << 16, &c->n_batch);
    else if (cli_is(a, "--max-queue", NULL)) rc = cli_parse_i32("serve", a, v, 1, 1 << 20, &c->max_queue);
    else if (cli_is(a, "--max-connections", NULL)) rc = cli_parse_i32("serve", a, v, 1, 60000, &c->max_connections);
    else if (cli_is(a, "--max-body", NULL)) rc = cli_parse_i32("serve", a, v, 64, 1 << 30, &body);
    else if (cli_is(a, "--max-prompt-tokens", NULL)) rc = cli_parse_i32("serve", a, v, 1, 1 << 24, &c->max_prompt_tokens);
    else if (cli_is(a, "--max-tokens", NULL)) rc = cli_parse_i32("serve", a, v, 1, 1 << 24, &c->max_tokens);
    else if (cli_is(a, "--timeout", NULL)) rc = cli_parse_i32("serve", a, v, 0, 86400, &c->timeout_s);
    else if (cli_is(a, "--device", NULL)) rc = cli_parse_device("serve", a, v, &c->device);
    else if (cli_is_gpu_layers(a)) rc = cli_parse_gpu_layers("serve", a, v, &c->n_gpu_layers);
    else return cli_parse_model("serve", a, v, &c->mp);
    c->port = port;
    c->max_body_bytes = body;
    return rc;
}

/* Returns 0 ok, 1 bad value, 2 usage error, 3 help shown. */
static int parse_args(int argc, char **argv, qs_config *c) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is(a, "-h", "--help")) {
            usage(stdout);
            return 3;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "quarrel serve: %s '%s' (see quarrel serve --help)\n",
                    a[0] == '-' ? "option needs a value or is unknown:" : "unexpected argument", a);
            return 2;
        }
        const int rc = parse_value(c, a, argv[++i]);
        if (rc == 2) {
            fprintf(stderr, "quarrel serve: unknown option '%s' (see quarrel serve --help)\n", a);
            return 2;
        }
        if (rc) return 1;
    }
    if (!c->model_path) {
        fprintf(stderr, "quarrel serve: -m MODEL is required (see quarrel serve --help)\n");
        return 2;
    }
    return 0;
}

int cmd_serve(int argc, char **argv) {
    qs_config cfg = qs_config_default();
    cfg.api_key = getenv("QUARREL_API_KEY");
    if (cfg.api_key && !cfg.api_key[0]) cfg.api_key = NULL;
    const int rc = parse_args(argc, argv, &cfg);
    if (rc) return rc == 3 ? 0 : rc;
    /* Every thread started from here on inherits the blocked signals; this thread takes
     * them with sigwait and shuts the server down in order. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    qr_error err = {{0}};
    qs_server *srv = NULL;
    if (qs_server_start(&cfg, &srv, &err) != QR_OK) {
        fprintf(stderr, "quarrel serve: %s\n", err.msg);
        return 1;
    }
    const int colon = strchr(cfg.host, ':') != NULL;
    printf("quarrel serve: listening on http://%s%s%s:%d (model %s, device %s)\n", colon ? "[" : "", cfg.host,
           colon ? "]" : "", qs_server_port(srv), qs_server_model_name(srv), qs_server_device(srv));
    fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "quarrel serve: stopping (signal %d)\n", sig);
    qs_server_stop(srv);
    return 0;
}
