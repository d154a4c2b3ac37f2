/* quarrel inspect FILE [--json] [--array-items N|all]: prints a GGUF file's header,
 * metadata, tensor table and totals by type, as text or as one JSON document.
 * quarrel inspect FILE --arch-json [--arch-config F] [--swa N]: prints the resolved
 * descriptor (the compute semantics quarrel runs the model with) after overrides. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_parse.h"
#include "commands.h"
#include "gguf/gguf.h"

#define DEFAULT_ARRAY_ITEMS 8
#define TEXT_STRING_MAX 120 /* bytes of a string shown in text mode */

typedef struct {
    FILE *out;
    bool json;
    uint64_t max_items; /* of each array; UINT64_MAX = all */
} printer;

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel inspect FILE [--json] [--array-items N|all]\n"
            "       quarrel inspect FILE --arch-json [--arch-config FILE.json] [--swa N]\n"
            "\n"
            "Prints a GGUF file's version, alignment, data offset, metadata, tensor table\n"
            "(name, type, shape, bytes, offset in the data section), totals by type and the\n"
            "parameter count. A malformed file gives a one-line error and exit code 1.\n"
            "\n"
            "  --json              print one JSON document instead of text\n"
            "  --array-items N     show the first N items of each array (default %d; 'all')\n"
            "  --arch-json         load the model and print its resolved descriptor (compute\n"
            "                      semantics: norms, RoPE, sliding window, scales) as JSON;\n"
            "                      --arch-config FILE.json and --swa N apply overrides first,\n"
            "                      as for quarrel run\n"
            "  -h, --help          show this help\n",
            DEFAULT_ARRAY_ITEMS);
}

/* ---- Strings ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* JSON string: escapes quotes, backslashes and control characters; bytes that are not
 * valid UTF-8 become U+FFFD so that the document stays valid UTF-8. */
static void json_str(FILE *f, const char *s, uint64_t n) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (uint64_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else if (c >= 0x80) {
            size_t len = utf8_len(p + i, (size_t)(n - i));
            if (len == 0) {
                fputs("\\ufffd", f);
                i++;
                continue;
            }
            fwrite(p + i, 1, len, f);
            i += len;
            continue;
        } else {
            fputc((int)c, f);
        }
        i++;
    }
    fputc('"', f);
}

/* Text string: quoted, control characters escaped, long strings cut. */
static void text_str(FILE *f, const char *s, uint64_t n) {
    uint64_t shown = n > TEXT_STRING_MAX ? TEXT_STRING_MAX : n;
    fputc('"', f);
    for (uint64_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
    if (shown < n) fprintf(f, "... (%" PRIu64 " bytes)", n);
}

/* ---- Values ------------------------------------------------------------------------- */

static void print_float(const printer *pr, double v, bool is_f32) {
    if (isnan(v) || isinf(v)) {
        const char *s = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
        fprintf(pr->out, pr->json ? "\"%s\"" : "%s", s);
    } else if (pr->json) {
        fprintf(pr->out, "%.17g", v); /* exact: the JSON number is the stored value */
    } else {
        fprintf(pr->out, is_f32 ? "%.9g" : "%.17g", v);
    }
}

static void print_value(const printer *pr, const qr_gguf_value *v);

static void print_array_items(const printer *pr, const qr_gguf_value *arr) {
    qr_gguf_array_iter it;
    qr_gguf_value e;
    qr_gguf_array_iter_init(&it, arr);
    fputc('[', pr->out);
    for (uint64_t i = 0; i < pr->max_items && qr_gguf_array_iter_next(&it, &e); i++) {
        if (i) fputs(", ", pr->out);
        print_value(pr, &e);
    }
    if (!pr->json && arr->v.arr.count > pr->max_items) fputs(", ...", pr->out);
    fputc(']', pr->out);
}

static void print_value(const printer *pr, const qr_gguf_value *v) {
    FILE *f = pr->out;
    switch (v->type) {
    case QR_GGUF_UINT8: case QR_GGUF_UINT16: case QR_GGUF_UINT32: case QR_GGUF_UINT64:
        fprintf(f, "%" PRIu64, v->v.u64);
        break;
    case QR_GGUF_INT8: case QR_GGUF_INT16: case QR_GGUF_INT32: case QR_GGUF_INT64:
        fprintf(f, "%" PRId64, v->v.i64);
        break;
    case QR_GGUF_FLOAT32: case QR_GGUF_FLOAT64:
        print_float(pr, v->v.f64, v->type == QR_GGUF_FLOAT32);
        break;
    case QR_GGUF_BOOL:
        fputs(v->v.u64 ? "true" : "false", f);
        break;
    case QR_GGUF_STRING:
        (pr->json ? json_str : text_str)(f, v->v.str.ptr, v->v.str.len);
        break;
    case QR_GGUF_ARRAY:
        print_array_items(pr, v);
        break;
    default:
        fputs("null", f);
    }
}

/* "string[512]" or "array[3] of array of int32" style type description for text. */
static void text_type(char *buf, size_t cap, const qr_gguf_value *v) {
    if (v->type != QR_GGUF_ARRAY) {
        snprintf(buf, cap, "%s", qr_gguf_vtype_name(v->type));
        return;
    }
    snprintf(buf, cap, "%s[%" PRIu64 "]", qr_gguf_vtype_name(v->v.arr.elem_type), v->v.arr.count);
}

/* ---- Sections ----------------------------------------------------------------------- */

static void print_kv_json(const printer *pr, const qr_gguf_kv *kv) {
    FILE *f = pr->out;
    fputs("{\"key\": ", f);
    json_str(f, kv->key.ptr, kv->key.len);
    fprintf(f, ", \"offset\": %" PRIu64 ", \"type\": \"%s\"", kv->offset, qr_gguf_vtype_name(kv->value.type));
    if (kv->value.type == QR_GGUF_ARRAY) {
        fprintf(f, ", \"elem_type\": \"%s\", \"count\": %" PRIu64 ", \"truncated\": %s",
                qr_gguf_vtype_name(kv->value.v.arr.elem_type), kv->value.v.arr.count,
                kv->value.v.arr.count > pr->max_items ? "true" : "false");
    }
    fputs(", \"value\": ", f);
    print_value(pr, &kv->value);
    fputc('}', f);
}

static void print_metadata(const printer *pr, const qr_gguf *g) {
    int64_t n = qr_gguf_n_kv(g);
    if (pr->json) {
        fputs("  \"metadata\": [", pr->out);
        for (int64_t i = 0; i < n; i++) {
            fputs(i ? ",\n    " : "\n    ", pr->out);
            print_kv_json(pr, qr_gguf_kv_at(g, i));
        }
        fputs(n ? "\n  ],\n" : "],\n", pr->out);
        return;
    }
    int width = 8;
    for (int64_t i = 0; i < n; i++) {
        uint64_t len = qr_gguf_kv_at(g, i)->key.len;
        if ((int)len > width) width = len > 48 ? 48 : (int)len;
    }
    int type_width = 8;
    for (int64_t i = 0; i < n; i++) {
        char type[48];
        text_type(type, sizeof type, &qr_gguf_kv_at(g, i)->value);
        if ((int)strlen(type) > type_width) type_width = (int)strlen(type);
    }
    fprintf(pr->out, "\nmetadata: %" PRId64 " entries\n", n);
    for (int64_t i = 0; i < n; i++) {
        const qr_gguf_kv *kv = qr_gguf_kv_at(g, i);
        char type[48];
        text_type(type, sizeof type, &kv->value);
        fprintf(pr->out, "  %-*.*s  %-*s  ", width, (int)(kv->key.len > 200 ? 200 : kv->key.len), kv->key.ptr,
                type_width, type);
        print_value(pr, &kv->value);
        fputc('\n', pr->out);
    }
}

static void shape_str(char *buf, size_t cap, const qr_gguf_tensor *t) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (uint32_t j = 0; j < t->n_dims && used < cap; j++) {
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, j ? ", " : "", t->ne[j]);
    }
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

static void print_tensor_json(FILE *f, const qr_gguf *g, const qr_gguf_tensor *t) {
    char shape[128];
    shape_str(shape, sizeof shape, t);
    fputs("{\"name\": ", f);
    json_str(f, t->name.ptr, t->name.len);
    fprintf(f, ", \"type\": \"%s\", \"type_id\": %d, \"shape\": %s, \"n_elements\": %" PRId64
               ", \"bytes\": %" PRIu64 ", \"offset\": %" PRIu64 ", \"file_offset\": %" PRIu64 "}",
            qr_type_name(t->type), (int)t->type, shape, t->n_elements, t->n_bytes, t->offset,
            qr_gguf_data_offset(g) + t->offset);
}

static void print_tensors(const printer *pr, const qr_gguf *g) {
    int64_t n = qr_gguf_n_tensors(g);
    if (pr->json) {
        fputs("  \"tensors\": [", pr->out);
        for (int64_t i = 0; i < n; i++) {
            fputs(i ? ",\n    " : "\n    ", pr->out);
            print_tensor_json(pr->out, g, qr_gguf_tensor_at(g, i));
        }
        fputs(n ? "\n  ],\n" : "],\n", pr->out);
        return;
    }
    int width = 4;
    for (int64_t i = 0; i < n; i++) {
        uint64_t len = qr_gguf_tensor_at(g, i)->name.len;
        if ((int)len > width) width = len > 64 ? 64 : (int)len;
    }
    fprintf(pr->out, "\ntensors: %" PRId64 " (shape in ggml order, ne[0] first; offset within the data section)\n"
                     "  %5s  %-*s  %-7s %-24s %12s %12s\n",
            n, "#", width, "name", "type", "shape", "bytes", "offset");
    for (int64_t i = 0; i < n; i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        char shape[128];
        shape_str(shape, sizeof shape, t);
        fprintf(pr->out, "  %5" PRId64 "  %-*.*s  %-7s %-24s %12" PRIu64 " %12" PRIu64 "\n", i, width,
                (int)(t->name.len > 200 ? 200 : t->name.len), t->name.ptr, qr_type_name(t->type), shape,
                t->n_bytes, t->offset);
    }
}

static void print_totals(const printer *pr, const qr_gguf *g) {
    uint64_t count[QR_TYPE_COUNT] = {0}, bytes[QR_TYPE_COUNT] = {0}, all_bytes = 0;
    uint64_t params = 0;
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        count[t->type]++;
        bytes[t->type] += t->n_bytes;
        all_bytes += t->n_bytes;
        params += (uint64_t)t->n_elements;
    }
    FILE *f = pr->out;
    if (pr->json) fputs("  \"totals\": [", f);
    else fprintf(f, "\ntotals by type:\n  %-7s %8s %14s\n", "type", "tensors", "bytes");
    bool first = true;
    for (int ty = 0; ty < QR_TYPE_COUNT; ty++) {
        if (!count[ty]) continue;
        if (pr->json) {
            fprintf(f, "%s{\"type\": \"%s\", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", first ? "" : ", ",
                    qr_type_name((qr_type)ty), count[ty], bytes[ty]);
        } else {
            fprintf(f, "  %-7s %8" PRIu64 " %14" PRIu64 "\n", qr_type_name((qr_type)ty), count[ty], bytes[ty]);
        }
        first = false;
    }
    if (pr->json) {
        fprintf(f, "],\n  \"tensor_bytes\": %" PRIu64 ",\n  \"n_params\": %" PRIu64 "\n", all_bytes, params);
    } else {
        fprintf(f, "  %-7s %8" PRId64 " %14" PRIu64 "\nparameters: %" PRIu64 " (%.2f M)\n", "all",
                qr_gguf_n_tensors(g), all_bytes, params, (double)params / 1e6);
    }
}

static void print_header(const printer *pr, const qr_gguf *g) {
    FILE *f = pr->out;
    if (pr->json) {
        fputs("{\n  \"file\": ", f);
        json_str(f, qr_gguf_path(g), strlen(qr_gguf_path(g)));
        fprintf(f, ",\n  \"version\": %u,\n  \"alignment\": %u,\n  \"data_offset\": %" PRIu64
                   ",\n  \"file_size\": %" PRIu64 ",\n  \"n_kv\": %" PRId64 ",\n  \"n_tensors\": %" PRId64 ",\n",
                qr_gguf_version(g), qr_gguf_alignment(g), qr_gguf_data_offset(g), qr_gguf_file_size(g),
                qr_gguf_n_kv(g), qr_gguf_n_tensors(g));
        return;
    }
    fprintf(f, "file:         %s\nGGUF version: %u\nalignment:    %u\ndata offset:  %" PRIu64
               "\nfile size:    %" PRIu64 "\n",
            qr_gguf_path(g), qr_gguf_version(g), qr_gguf_alignment(g), qr_gguf_data_offset(g),
            qr_gguf_file_size(g));
}

/* ---- Command ------------------------------------------------------------------------ */

static int parse_items(const char *s, uint64_t *out) {
    if (strcmp(s, "all") == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-') return -1;
    *out = v;
    return 0;
}

/* The descriptor through the public API, so it shows exactly what `quarrel run` uses. */
static int print_arch_json(const char *path, const qr_model_params *mp) {
    char err[1024];
    qr_model *m = qr_model_load_with(path, mp, err, sizeof err);
    if (!m) {
        fprintf(stderr, "quarrel inspect: %s\n", err);
        return 1;
    }
    int32_t n = qr_model_describe_json(m, NULL, 0);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    int rc = 1;
    if (buf && qr_model_describe_json(m, buf, n + 1) == n) {
        printf("%s\n", buf);
        rc = fflush(stdout) == 0 ? 0 : 1;
    } else {
        fprintf(stderr, "quarrel inspect: out of memory\n");
    }
    free(buf);
    qr_model_free(m);
    return rc;
}

int cmd_inspect(int argc, char **argv) {
    printer pr = {.out = stdout, .json = false, .max_items = DEFAULT_ARRAY_ITEMS};
    qr_model_params mp = qr_model_default_params();
    bool arch_json = false, overrides = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            pr.json = true;
        } else if (strcmp(a, "--arch-json") == 0) {
            arch_json = true;
        } else if ((strcmp(a, "--arch-config") == 0 || strcmp(a, "--swa") == 0) && i + 1 < argc) {
            if (cli_parse_model("inspect", a, argv[++i], &mp) != 0) return 1;
            overrides = true;
        } else if (strcmp(a, "--array-items") == 0 && i + 1 < argc && parse_items(argv[i + 1], &pr.max_items) == 0) {
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "quarrel inspect: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "quarrel inspect: more than one FILE given\n");
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    if (overrides && !arch_json) {
        fprintf(stderr, "quarrel inspect: --arch-config and --swa only apply with --arch-json\n");
        return 2;
    }
    if (arch_json) return print_arch_json(path, &mp);
    qr_gguf *g;
    qr_error err;
    if (qr_gguf_open(path, &g, &err) != QR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    print_header(&pr, g);
    print_metadata(&pr, g);
    print_tensors(&pr, g);
    print_totals(&pr, g);
    if (pr.json) fputs("}\n", pr.out);
    qr_gguf_close(g);
    return fflush(stdout) == 0 ? 0 : 1;
}
