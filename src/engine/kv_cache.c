#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>

typedef struct kv_seq {
    int32_t len;
    int32_t swa_lo; /* lowest position whose sliding-window cells are held (a copied
                       sequence may hold fewer than its ring's worth) */
    int32_t *pages; /* max_pages entries; -1 = none */
} kv_seq;

struct qr_kv_cache {
    int32_t n_ctx, n_seq_max, max_batch, page_size, max_pages, ring;
    bool f32;
    uint32_t n_layer, n_swa;
    uint32_t n_host_layers; /* layers 0 .. n_host_layers-1 have host cells */
    int64_t stride_k, stride_v;
    size_t elem;
    bool *layer_swa;
    void **k, **v;      /* per layer */
    kv_seq *seqs;
    int32_t *free_pages; /* stack */
    int32_t n_free;
    int32_t *page_refs;  /* sequences holding each page: > 1 = shared, copied on write */
    qr_kv_copy_hook copy_hook;
    void *copy_user;
};

void qr_kv_set_copy_hook(qr_kv_cache *kv, qr_kv_copy_hook fn, void *user) {
    kv->copy_hook = fn;
    kv->copy_user = user;
}

int64_t qr_kv_layer_n_cells(const qr_kv_cache *kv, uint32_t il) {
    return kv->layer_swa[il] ? (int64_t)kv->n_seq_max * kv->ring : (int64_t)kv->max_pages * kv->page_size;
}

static int alloc_layers(qr_kv_cache *kv, qr_error *err) {
    kv->k = calloc(kv->n_layer, sizeof *kv->k);
    kv->v = calloc(kv->n_layer, sizeof *kv->v);
    if (!kv->k || !kv->v) return qr_fail(err, "out of memory for the KV cache");
    for (uint32_t il = 0; il < kv->n_host_layers; il++) {
        const int64_t cells = qr_kv_layer_n_cells(kv, il);
        kv->k[il] = calloc((size_t)(cells * kv->stride_k), kv->elem);
        kv->v[il] = calloc((size_t)(cells * kv->stride_v), kv->elem);
        if (!kv->k[il] || !kv->v[il]) {
            return qr_fail(err, "out of memory for the KV cache (layer %u, %lld cells)", il, (long long)cells);
        }
    }
    return QR_OK;
}

static int alloc_seqs(qr_kv_cache *kv, qr_error *err) {
    kv->seqs = calloc((size_t)kv->n_seq_max, sizeof *kv->seqs);
    kv->free_pages = malloc((size_t)kv->max_pages * sizeof *kv->free_pages);
    kv->page_refs = calloc((size_t)kv->max_pages, sizeof *kv->page_refs);
    if (!kv->seqs || !kv->free_pages || !kv->page_refs) return qr_fail(err, "out of memory for the KV cache");
    for (int32_t s = 0; s < kv->n_seq_max; s++) {
        kv->seqs[s].pages = malloc((size_t)kv->max_pages * sizeof(int32_t));
        if (!kv->seqs[s].pages) return qr_fail(err, "out of memory for the KV cache");
        for (int32_t i = 0; i < kv->max_pages; i++) kv->seqs[s].pages[i] = -1;
    }
    /* Pages are handed out lowest first. */
    for (int32_t i = 0; i < kv->max_pages; i++) kv->free_pages[i] = kv->max_pages - 1 - i;
    kv->n_free = kv->max_pages;
    return QR_OK;
}

int qr_kv_create(const qr_descriptor *d, const qr_kv_params *p, qr_kv_cache **out, qr_error *err) {
    *out = NULL;
    if (p->n_ctx < 1) return qr_fail(err, "n_ctx must be >= 1 (got %d)", p->n_ctx);
    if (p->n_seq_max < 1) return qr_fail(err, "n_seq_max must be >= 1 (got %d)", p->n_seq_max);
    if (p->max_batch < 1) return qr_fail(err, "max_batch must be >= 1 (got %d)", p->max_batch);
    if (p->page_size < 0) return qr_fail(err, "page_size must be >= 0 (got %d)", p->page_size);
    if (p->n_device_layers < 0 || (uint32_t)p->n_device_layers > d->hp.n_layer) {
        return qr_fail(err, "n_device_layers must be in 0..%u (got %d)", d->hp.n_layer, p->n_device_layers);
    }
    qr_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return qr_fail(err, "out of memory for the KV cache");
    kv->n_ctx = p->n_ctx;
    kv->n_seq_max = p->n_seq_max;
    kv->max_batch = p->max_batch;
    kv->page_size = p->page_size ? p->page_size : 16;
    kv->max_pages = (p->n_ctx + kv->page_size - 1) / kv->page_size;
    kv->f32 = p->f32;
    kv->elem = p->f32 ? 4 : 2;
    kv->n_layer = d->hp.n_layer;
    kv->n_host_layers = kv->n_layer - (uint32_t)p->n_device_layers;
    kv->n_swa = d->n_swa;
    int64_t ring = (int64_t)d->n_swa + p->max_batch;
    kv->ring = (int32_t)(ring < p->n_ctx ? ring : p->n_ctx);
    kv->stride_k = (int64_t)d->hp.n_head_kv * d->hp.head_dim_k;
    kv->stride_v = (int64_t)d->hp.n_head_kv * d->hp.head_dim_v;
    kv->layer_swa = calloc(kv->n_layer, sizeof *kv->layer_swa);
    if (!kv->layer_swa) {
        free(kv);
        return qr_fail(err, "out of memory for the KV cache");
    }
    for (uint32_t il = 0; il < kv->n_layer; il++) kv->layer_swa[il] = qr_descriptor_layer_is_swa(d, il);
    if (alloc_layers(kv, err) != QR_OK || alloc_seqs(kv, err) != QR_OK) {
        qr_kv_free(kv);
        return QR_ERR;
    }
    *out = kv;
    return QR_OK;
}

void qr_kv_free(qr_kv_cache *kv) {
    if (!kv) return;
    for (uint32_t il = 0; kv->k && il < kv->n_layer; il++) free(kv->k[il]);
    for (uint32_t il = 0; kv->v && il < kv->n_layer; il++) free(kv->v[il]);
    free(kv->k);
    free(kv->v);
    for (int32_t s = 0; kv->seqs && s < kv->n_seq_max; s++) free(kv->seqs[s].pages);
    free(kv->seqs);
    free(kv->free_pages);
    free(kv->page_refs);
    free(kv->layer_swa);
    free(kv);
}

bool qr_kv_is_f32(const qr_kv_cache *kv) { return kv->f32; }
int32_t qr_kv_n_ctx(const qr_kv_cache *kv) { return kv->n_ctx; }
int32_t qr_kv_n_seq_max(const qr_kv_cache *kv) { return kv->n_seq_max; }
int32_t qr_kv_max_batch(const qr_kv_cache *kv) { return kv->max_batch; }
int32_t qr_kv_seq_len(const qr_kv_cache *kv, int32_t seq) {
    return (seq >= 0 && seq < kv->n_seq_max) ? kv->seqs[seq].len : 0;
}

static int check_seq(const qr_kv_cache *kv, int32_t seq, qr_error *err) {
    if (seq < 0 || seq >= kv->n_seq_max) {
        return qr_fail(err, "sequence id %d is out of range [0, %d)", seq, kv->n_seq_max);
    }
    return QR_OK;
}

static bool has_swa_layer(const qr_kv_cache *kv) {
    for (uint32_t il = 0; il < kv->n_layer; il++) {
        if (kv->layer_swa[il]) return true;
    }
    return false;
}

/* A page goes back on the free stack when its last holder lets go. */
static void release_page(qr_kv_cache *kv, int32_t page) {
    if (--kv->page_refs[page] == 0) kv->free_pages[kv->n_free++] = page;
}

static int take_page(qr_kv_cache *kv, int32_t *page, qr_error *err) {
    if (kv->n_free == 0) {
        return qr_fail(err, "the KV cache is full (%d cells shared by all sequences)", kv->max_pages * kv->page_size);
    }
    *page = kv->free_pages[--kv->n_free];
    kv->page_refs[*page] = 1;
    return QR_OK;
}

/* The lowest position whose sliding-window keys the ring still holds. */
static int64_t swa_held_from(const qr_kv_cache *kv, const kv_seq *s) {
    const int64_t ring_lo = (int64_t)s->len - kv->ring;
    return ring_lo > s->swa_lo ? ring_lo : s->swa_lo;
}

/* Copies cells [from, from + n) to [to, to + n) of every layer of one kind (paged
 * full-attention layers, or sliding-window rings). */
static void copy_cells(qr_kv_cache *kv, bool swa, int64_t from, int64_t to, int64_t n) {
    for (uint32_t il = 0; il < kv->n_layer; il++) {
        if (kv->layer_swa[il] != swa || !kv->k[il]) continue; /* device layers: the hook copies */
        char *k = kv->k[il], *v = kv->v[il];
        const size_t bk = (size_t)kv->stride_k * kv->elem, bv = (size_t)kv->stride_v * kv->elem;
        memcpy(k + (size_t)to * bk, k + (size_t)from * bk, (size_t)n * bk);
        memcpy(v + (size_t)to * bv, v + (size_t)from * bv, (size_t)n * bv);
    }
    if (kv->copy_hook) kv->copy_hook(kv->copy_user, swa, from, to, n);
}

/* Gives seq its own copy of page slot i before a write (copy on write). */
static int own_page(qr_kv_cache *kv, kv_seq *s, int32_t i, qr_error *err) {
    const int32_t shared = s->pages[i];
    if (kv->page_refs[shared] <= 1) return QR_OK;
    int32_t fresh = -1;
    if (take_page(kv, &fresh, err) != QR_OK) return QR_ERR;
    copy_cells(kv, false, (int64_t)shared * kv->page_size, (int64_t)fresh * kv->page_size, kv->page_size);
    release_page(kv, shared);
    s->pages[i] = fresh;
    return QR_OK;
}

int qr_kv_seq_truncate(qr_kv_cache *kv, int32_t seq, int32_t pos, qr_error *err) {
    if (check_seq(kv, seq, err) != QR_OK) return QR_ERR;
    kv_seq *s = &kv->seqs[seq];
    if (pos < 0) return qr_fail(err, "truncation position %d is negative", pos);
    if (pos >= s->len) return QR_OK;
    /* The next row (at pos) needs keys pos - n_swa + 1 .. pos - 1; the ring still holds
     * positions len - ring .. len - 1. */
    if (pos > 0 && has_swa_layer(kv) && (int64_t)pos - kv->n_swa + 1 < swa_held_from(kv, s)) {
        return qr_fail(err, "cannot rewind sequence %d from %d to %d: its sliding-window keys are overwritten",
                       seq, s->len, pos);
    }
    const int32_t keep_pages = (pos + kv->page_size - 1) / kv->page_size;
    for (int32_t i = keep_pages; i < kv->max_pages; i++) {
        if (s->pages[i] >= 0) {
            release_page(kv, s->pages[i]);
            s->pages[i] = -1;
        }
    }
    s->len = pos;
    if (pos == 0) s->swa_lo = 0;
    return QR_OK;
}

int qr_kv_append(qr_kv_cache *kv, int32_t seq, int32_t pos, qr_error *err) {
    if (check_seq(kv, seq, err) != QR_OK) return QR_ERR;
    kv_seq *s = &kv->seqs[seq];
    if (pos < 0) return qr_fail(err, "position %d is negative", pos);
    if (pos >= kv->n_ctx) {
        return qr_fail(err, "position %d of sequence %d exceeds the context size (%d)", pos, seq, kv->n_ctx);
    }
    if (pos > s->len) {
        return qr_fail(err, "position %d of sequence %d leaves a gap (the sequence holds %d positions)", pos, seq,
                       s->len);
    }
    if (pos < s->len && qr_kv_seq_truncate(kv, seq, pos, err) != QR_OK) return QR_ERR;
    const int32_t page = pos / kv->page_size;
    if (s->pages[page] < 0) {
        if (take_page(kv, &s->pages[page], err) != QR_OK) return QR_ERR;
    } else if (own_page(kv, s, page, err) != QR_OK) {
        return QR_ERR;
    }
    s->len = pos + 1;
    return QR_OK;
}

int qr_kv_seq_copy(qr_kv_cache *kv, int32_t src, int32_t dst, int32_t n, qr_error *err) {
    if (check_seq(kv, src, err) != QR_OK || check_seq(kv, dst, err) != QR_OK) return QR_ERR;
    if (src == dst) return qr_fail(err, "cannot copy sequence %d onto itself", src);
    qr_kv_seq_truncate(kv, dst, 0, NULL);
    const kv_seq *s = &kv->seqs[src];
    if (n < 0 || n > s->len) {
        return qr_fail(err, "cannot copy %d positions of sequence %d: it holds %d", n, src, s->len);
    }
    /* dst's next row (at n) attends to keys n - n_swa + 1 .. n - 1 of the sliding layers:
     * src's ring must still hold them. */
    const int64_t need_lo = (int64_t)n - kv->n_swa + 1;
    if (n > 0 && has_swa_layer(kv) && need_lo < swa_held_from(kv, s)) {
        return qr_fail(err, "cannot copy %d positions of sequence %d: its sliding-window keys are overwritten", n,
                       src);
    }
    kv_seq *d = &kv->seqs[dst];
    const int32_t n_pages = (n + kv->page_size - 1) / kv->page_size;
    for (int32_t i = 0; i < n_pages; i++) {
        d->pages[i] = s->pages[i];
        kv->page_refs[d->pages[i]]++;
    }
    if (has_swa_layer(kv) && n > 0) {
        const int64_t lo = swa_held_from(kv, s) > 0 ? swa_held_from(kv, s) : 0;
        for (int64_t p = lo; p < n; p++) {
            copy_cells(kv, true, (int64_t)src * kv->ring + p % kv->ring, (int64_t)dst * kv->ring + p % kv->ring, 1);
        }
        d->swa_lo = (int32_t)lo;
    }
    d->len = n;
    return QR_OK;
}

int32_t qr_kv_page_size(const qr_kv_cache *kv) { return kv->page_size; }
int32_t qr_kv_n_pages(const qr_kv_cache *kv) { return kv->max_pages; }
int32_t qr_kv_n_free_pages(const qr_kv_cache *kv) { return kv->n_free; }

int32_t qr_kv_n_shared_pages(const qr_kv_cache *kv) {
    int32_t n = 0;
    for (int32_t i = 0; i < kv->max_pages; i++) n += kv->page_refs[i] > 1;
    return n;
}

int32_t qr_kv_cell(const qr_kv_cache *kv, uint32_t il, int32_t seq, int32_t pos) {
    if (kv->layer_swa[il]) return seq * kv->ring + pos % kv->ring;
    return kv->seqs[seq].pages[pos / kv->page_size] * kv->page_size + pos % kv->page_size;
}

void *qr_kv_k(qr_kv_cache *kv, uint32_t il) { return kv->k[il]; }
void *qr_kv_v(qr_kv_cache *kv, uint32_t il) { return kv->v[il]; }
int64_t qr_kv_stride_k(const qr_kv_cache *kv) { return kv->stride_k; }
int64_t qr_kv_stride_v(const qr_kv_cache *kv) { return kv->stride_v; }
bool qr_kv_layer_is_swa(const qr_kv_cache *kv, uint32_t il) { return kv->layer_swa[il]; }
uint32_t qr_kv_n_swa(const qr_kv_cache *kv) { return kv->n_swa; }
