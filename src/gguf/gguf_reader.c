/* Opening a GGUF file: mmap, then parse and validate the header, the metadata and the
 * tensor infos in one pass. Nothing is allocated from a count until that count has been
 * checked against the bytes left in the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "gguf/gguf_internal.h"

/* The fewest bytes a kv (key length, type, a 1-byte value) and a tensor info (name
 * length, n_dims, type, offset) can take. */
#define MIN_KV_BYTES 13
#define MIN_TENSOR_INFO_BYTES 24

/* Writes a name into a message-safe form: at most 80 bytes, non-printables as '?'. */
static void safe_name(char *dst, size_t cap, qr_gguf_str s) {
    size_t n = s.len < 80 ? (size_t)s.len : 80;
    if (n > cap - 4) n = cap - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        dst[i] = (ch >= 0x20 && ch != 0x7f) ? (char)ch : '?';
    }
    if (s.len > n) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

static void set_where(qr_gguf_cursor *c, const char *kind, int64_t i, const qr_gguf_str *name) {
    if (!name) {
        snprintf(c->where, sizeof c->where, "%s[%lld]", kind, (long long)i);
        return;
    }
    char buf[96];
    safe_name(buf, sizeof buf, *name);
    snprintf(c->where, sizeof c->where, "%s[%lld] '%s'", kind, (long long)i, buf);
}

static int read_header(qr_gguf *g, qr_gguf_cursor *c, uint64_t *n_tensors, uint64_t *n_kv,
                       qr_error *err) {
    if (c->size < 4) {
        return qr_gguf_cursor_fail(c, err, "magic", 0, "truncated file: %llu bytes, not a GGUF file",
                                   (unsigned long long)c->size);
    }
    if (memcmp(c->base, "GGUF", 4) != 0) {
        const uint8_t *m = c->base;
        return qr_gguf_cursor_fail(c, err, "magic", 0,
                                   "expected \"GGUF\" (47 47 55 46), found %02x %02x %02x %02x: not a GGUF file",
                                   m[0], m[1], m[2], m[3]);
    }
    c->pos = 4;
    if (qr_gguf_read_u32(c, "version", &g->version, err) != QR_OK) return QR_ERR;
    if (g->version != 2 && g->version != 3) {
        bool swapped = g->version == 0x02000000u || g->version == 0x03000000u;
        return qr_gguf_cursor_fail(c, err, "version", 4,
                                   "unsupported GGUF version %u%s (quarrel reads versions 2 and 3)",
                                   g->version, swapped ? ", a big-endian file" : "");
    }
    if (qr_gguf_read_u64(c, "n_tensors", n_tensors, err) != QR_OK) return QR_ERR;
    if (qr_gguf_read_u64(c, "n_kv", n_kv, err) != QR_OK) return QR_ERR;
    if (*n_kv > qr_gguf_cursor_left(c) / MIN_KV_BYTES) {
        return qr_gguf_cursor_fail(c, err, "n_kv", 16,
                                   "%llu metadata entries cannot fit in the %llu bytes left",
                                   (unsigned long long)*n_kv, (unsigned long long)qr_gguf_cursor_left(c));
    }
    return QR_OK;
}

static int read_kv(qr_gguf *g, qr_gguf_cursor *c, int64_t i, qr_error *err) {
    qr_gguf_kv *kv = &g->kv[i];
    kv->offset = c->pos;
    set_where(c, "kv", i, NULL);
    if (qr_gguf_read_str(c, "key length", &kv->key, err) != QR_OK) return QR_ERR;
    set_where(c, "kv", i, &kv->key);
    int64_t first = -1;
    int r = qr_gguf_index_insert(&g->kv_index, kv->key, i, &first);
    if (r < 0) return qr_fail(err, "%s: out of memory indexing metadata keys", c->file);
    if (r == 0) {
        return qr_gguf_cursor_fail(c, err, "key", kv->offset, "duplicate key (first defined by kv[%lld] at offset %llu)",
                                   (long long)first, (unsigned long long)g->kv[first].offset);
    }
    uint64_t type_at = c->pos;
    uint32_t type;
    if (qr_gguf_read_u32(c, "value type", &type, err) != QR_OK) return QR_ERR;
    if (type >= QR_GGUF_VTYPE_COUNT) {
        return qr_gguf_cursor_fail(c, err, "value type", type_at, "unknown value type %u", type);
    }
    return qr_gguf_read_value(c, type, 0, &kv->value, err);
}

static int read_alignment(qr_gguf *g, qr_error *err) {
    g->alignment = QR_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = qr_gguf_index_find(&g->kv_index, "general.alignment", strlen("general.alignment"));
    if (i < 0) return QR_OK;
    const qr_gguf_kv *kv = &g->kv[i];
    if (kv->value.type != QR_GGUF_UINT32) {
        return qr_fail(err, "%s: kv[%lld] 'general.alignment' at offset %llu: has type %s, expected uint32",
                       g->path, (long long)i, (unsigned long long)kv->offset,
                       qr_gguf_vtype_name(kv->value.type));
    }
    uint64_t a = kv->value.v.u64;
    if (a == 0 || (a & (a - 1)) != 0) {
        return qr_fail(err, "%s: kv[%lld] 'general.alignment' at offset %llu: value %llu is not a nonzero power of two",
                       g->path, (long long)i, (unsigned long long)kv->offset, (unsigned long long)a);
    }
    g->alignment = (uint32_t)a;
    return QR_OK;
}

static int read_shape(qr_gguf_cursor *c, qr_gguf_tensor *t, qr_error *err) {
    uint64_t at = c->pos;
    if (qr_gguf_read_u32(c, "n_dims", &t->n_dims, err) != QR_OK) return QR_ERR;
    if (t->n_dims > QR_GGUF_MAX_DIMS) {
        return qr_gguf_cursor_fail(c, err, "n_dims", at, "%u dimensions, at most %d are supported",
                                   t->n_dims, QR_GGUF_MAX_DIMS);
    }
    t->n_elements = 1;
    for (int j = 0; j < QR_GGUF_MAX_DIMS; j++) t->ne[j] = 1;
    for (uint32_t j = 0; j < t->n_dims; j++) {
        char field[16];
        snprintf(field, sizeof field, "ne[%u]", j);
        uint64_t ne, ne_at = c->pos;
        if (qr_gguf_read_u64(c, field, &ne, err) != QR_OK) return QR_ERR;
        if (ne == 0 || ne > (uint64_t)INT64_MAX) {
            return qr_gguf_cursor_fail(c, err, field, ne_at, "dimension %lld is not positive",
                                       (long long)(int64_t)ne);
        }
        t->ne[j] = (int64_t)ne;
        if (t->n_elements > INT64_MAX / t->ne[j]) {
            return qr_gguf_cursor_fail(c, err, field, ne_at,
                                       "the element count overflows int64 (product of dimensions up to ne[%u] exceeds %lld)",
                                       j, (long long)INT64_MAX);
        }
        t->n_elements *= t->ne[j];
    }
    return QR_OK;
}

static int read_type(qr_gguf_cursor *c, qr_gguf_tensor *t, qr_error *err) {
    uint64_t at = c->pos;
    uint32_t id;
    if (qr_gguf_read_u32(c, "type", &id, err) != QR_OK) return QR_ERR;
    const qr_type_traits *tr = qr_type_get_traits(id);
    if (!tr) return qr_gguf_cursor_fail(c, err, "type", at, "unknown tensor type id %u", id);
    t->type = (qr_type)id;
    if (t->ne[0] % tr->block_size != 0) {
        return qr_gguf_cursor_fail(c, err, "ne[0]", at,
                                   "%lld elements per row is not a multiple of the %s block size %d",
                                   (long long)t->ne[0], tr->name, tr->block_size);
    }
    uint64_t blocks = (uint64_t)(t->n_elements / tr->block_size);
    if (blocks > UINT64_MAX / (uint64_t)tr->type_size) {
        return qr_gguf_cursor_fail(c, err, "type", at, "the tensor's size in bytes overflows uint64");
    }
    t->n_bytes = blocks * (uint64_t)tr->type_size;
    return QR_OK;
}

static int read_tensor_info(qr_gguf *g, qr_gguf_cursor *c, int64_t i, qr_error *err) {
    qr_gguf_tensor *t = &g->tensors[i];
    t->info_offset = c->pos;
    set_where(c, "tensor", i, NULL);
    if (qr_gguf_read_str(c, "name length", &t->name, err) != QR_OK) return QR_ERR;
    set_where(c, "tensor", i, &t->name);
    int64_t first = -1;
    int r = qr_gguf_index_insert(&g->tensor_index, t->name, i, &first);
    if (r < 0) return qr_fail(err, "%s: out of memory indexing tensor names", c->file);
    if (r == 0) {
        return qr_gguf_cursor_fail(c, err, "name", t->info_offset,
                                   "duplicate tensor name (first used by tensor[%lld] at offset %llu)",
                                   (long long)first, (unsigned long long)g->tensors[first].info_offset);
    }
    if (read_shape(c, t, err) != QR_OK || read_type(c, t, err) != QR_OK) return QR_ERR;
    uint64_t at = c->pos;
    if (qr_gguf_read_u64(c, "data offset", &t->offset, err) != QR_OK) return QR_ERR;
    if (t->offset % g->alignment != 0) {
        return qr_gguf_cursor_fail(c, err, "data offset", at, "%llu is not a multiple of the alignment %u",
                                   (unsigned long long)t->offset, g->alignment);
    }
    return QR_OK;
}

/* Runs after the data section's start is known: every tensor must lie inside the file. */
static int place_tensors(qr_gguf *g, qr_gguf_cursor *c, qr_error *err) {
    for (int64_t i = 0; i < g->n_tensors; i++) {
        qr_gguf_tensor *t = &g->tensors[i];
        uint64_t start = g->data_offset + t->offset; /* both < 2^63 after the checks */
        bool inside = t->offset <= UINT64_MAX - g->data_offset && start <= g->size &&
                      t->n_bytes <= g->size - start;
        if (!inside) {
            set_where(c, "tensor", i, &t->name);
            return qr_gguf_cursor_fail(c, err, "data offset", t->info_offset,
                                       "%llu bytes at offset %llu of the data section (which starts at %llu) lie outside the file (size %llu)",
                                       (unsigned long long)t->n_bytes, (unsigned long long)t->offset,
                                       (unsigned long long)g->data_offset, (unsigned long long)g->size);
        }
        t->data = g->base + start;
    }
    return QR_OK;
}

int qr_gguf_parse(qr_gguf *g, qr_error *err) {
    qr_gguf_cursor c = {.base = g->base, .size = g->size, .pos = 0, .file = g->path, .where = ""};
    uint64_t n_tensors, n_kv;
    if (read_header(g, &c, &n_tensors, &n_kv, err) != QR_OK) return QR_ERR;
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    if (!g->kv || qr_gguf_index_init(&g->kv_index, n_kv) != QR_OK) {
        return qr_fail(err, "%s: out of memory for %llu metadata entries", g->path, (unsigned long long)n_kv);
    }
    for (g->n_kv = 0; g->n_kv < (int64_t)n_kv; g->n_kv++) {
        if (read_kv(g, &c, g->n_kv, err) != QR_OK) return QR_ERR;
    }
    c.where[0] = '\0';
    if (read_alignment(g, err) != QR_OK) return QR_ERR;
    if (n_tensors > qr_gguf_cursor_left(&c) / MIN_TENSOR_INFO_BYTES) {
        return qr_gguf_cursor_fail(&c, err, "n_tensors", 8, "%llu tensor infos cannot fit in the %llu bytes left",
                                   (unsigned long long)n_tensors, (unsigned long long)qr_gguf_cursor_left(&c));
    }
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors || qr_gguf_index_init(&g->tensor_index, n_tensors) != QR_OK) {
        return qr_fail(err, "%s: out of memory for %llu tensors", g->path, (unsigned long long)n_tensors);
    }
    for (g->n_tensors = 0; g->n_tensors < (int64_t)n_tensors; g->n_tensors++) {
        if (read_tensor_info(g, &c, g->n_tensors, err) != QR_OK) return QR_ERR;
    }
    /* The data section starts at the next multiple of the alignment, as both llama.cpp
     * and the gguf package compute it. */
    g->data_offset = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    return place_tensors(g, &c, err);
}

/* ---- Opening and closing ------------------------------------------------------------ */

static qr_gguf *new_gguf(const char *name) {
    qr_gguf *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->path = strdup(name ? name : "<memory>");
    if (!g->path) {
        free(g);
        return NULL;
    }
    return g;
}

static int finish_open(qr_gguf *g, qr_gguf **out, qr_error *err) {
    if (qr_gguf_parse(g, err) != QR_OK) {
        qr_gguf_close(g);
        return QR_ERR;
    }
    QR_LOG_DEBUG("gguf", "opened %s: GGUF v%u, %lld metadata entries, %lld tensors, data at %llu",
                 g->path, g->version, (long long)g->n_kv, (long long)g->n_tensors,
                 (unsigned long long)g->data_offset);
    *out = g;
    return QR_OK;
}

int qr_gguf_open_memory(const void *data, size_t size, const char *name, qr_gguf **out, qr_error *err) {
    *out = NULL;
    qr_gguf *g = new_gguf(name);
    if (!g) return qr_fail(err, "%s: out of memory", name ? name : "<memory>");
    static const uint8_t empty[1] = {0};
    g->base = data ? data : empty;
    g->size = data ? size : 0;
    return finish_open(g, out, err);
}

static int map_file(qr_gguf *g, const char *path, qr_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qr_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return qr_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return qr_fail(err, "%s: not a regular file", path);
    }
    g->size = (uint64_t)st.st_size;
    if (g->size == 0) {
        static const uint8_t empty[1] = {0};
        g->base = empty; /* mmap refuses length 0; the parser reports the truncation */
        close(fd);
        return QR_OK;
    }
    void *p = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return qr_fail(err, "%s: cannot mmap %llu bytes: %s", path, (unsigned long long)g->size, strerror(e));
    g->base = p;
    g->mapped = true;
    return QR_OK;
}

int qr_gguf_open(const char *path, qr_gguf **out, qr_error *err) {
    *out = NULL;
    qr_gguf *g = new_gguf(path);
    if (!g) return qr_fail(err, "%s: out of memory", path);
    if (map_file(g, path, err) != QR_OK) {
        qr_gguf_close(g);
        return QR_ERR;
    }
    return finish_open(g, out, err);
}

void qr_gguf_close(qr_gguf *g) {
    if (!g) return;
    if (g->mapped) munmap((void *)g->base, (size_t)g->size);
    qr_gguf_index_free(&g->kv_index);
    qr_gguf_index_free(&g->tensor_index);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    free(g);
}

/* ---- Plain accessors ---------------------------------------------------------------- */

const char *qr_gguf_path(const qr_gguf *g) { return g->path; }
uint32_t qr_gguf_version(const qr_gguf *g) { return g->version; }
uint32_t qr_gguf_alignment(const qr_gguf *g) { return g->alignment; }
uint64_t qr_gguf_data_offset(const qr_gguf *g) { return g->data_offset; }
uint64_t qr_gguf_file_size(const qr_gguf *g) { return g->size; }
int64_t qr_gguf_n_kv(const qr_gguf *g) { return g->n_kv; }
int64_t qr_gguf_n_tensors(const qr_gguf *g) { return g->n_tensors; }

const qr_gguf_kv *qr_gguf_kv_at(const qr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

const qr_gguf_tensor *qr_gguf_tensor_at(const qr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const qr_gguf_kv *qr_gguf_find_kv(const qr_gguf *g, const char *key) {
    int64_t i = qr_gguf_index_find(&g->kv_index, key, strlen(key));
    return i < 0 ? NULL : &g->kv[i];
}

const qr_gguf_tensor *qr_gguf_find_tensor(const qr_gguf *g, const char *name) {
    int64_t i = qr_gguf_index_find(&g->tensor_index, name, strlen(name));
    return i < 0 ? NULL : &g->tensors[i];
}
