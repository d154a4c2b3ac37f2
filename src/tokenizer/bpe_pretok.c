#include "tokenizer/bpe_pretok.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode.h"

/* ---- the table: pre-tokenizer names -> splitter sets ------------------------------- */

enum { STEP_GPT2 = 1, STEP_LLAMA3, STEP_QWEN2, STEP_REGEX };
enum {
    SET_DEFAULT, SET_GPT2, SET_LLAMA3, SET_QWEN2, SET_DEEPSEEK_LLM, SET_DEEPSEEK_CODER,
    SET_FALCON, SET_STARCODER, SET_PORO, SET_VIKING, N_SETS
};
#define MAX_STEPS 6

typedef struct { int kind; const char *pattern; } step_def;

/* deepseek-llm's letter class (R_DSL in ../shared/MODELS.md), written as code point ranges. */
#define DSL_LETTERS                                                                              \
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"  \
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"            \
    "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}"   \
    "\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}"   \
    "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}" \
    "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}"  \
    "\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"  \
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}" \
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"   \
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"            \
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"            \
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"   \
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"  \
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"                \
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"            \
    "\\x{1E900}-\\x{1E943}"
#define CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"

static const step_def SETS[N_SETS][MAX_STEPS] = {
    [SET_DEFAULT] = {{STEP_REGEX, "[\\p{P}\\$\\+<=>\\^~\\|]+"}, {STEP_GPT2, NULL},
                     {STEP_REGEX, "\\p{N}+"}, {STEP_REGEX, "[0-9][0-9][0-9]"}},
    [SET_GPT2] = {{STEP_GPT2, NULL}},
    [SET_LLAMA3] = {{STEP_LLAMA3, NULL}},
    [SET_QWEN2] = {{STEP_QWEN2, NULL}},
    [SET_DEEPSEEK_LLM] = {{STEP_REGEX, "[\\r\\n]"}, {STEP_REGEX, "\\s?[" DSL_LETTERS "]+"},
                          {STEP_REGEX, "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}"
                                       "\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+"},
                          {STEP_REGEX, "\\s+$"}, {STEP_REGEX, CJK}, {STEP_REGEX, "\\p{N}+"}},
    [SET_DEEPSEEK_CODER] = {{STEP_REGEX, "[\\r\\n]"}, {STEP_REGEX, "\\s?\\p{L}+"},
                            {STEP_REGEX, "\\s?\\p{P}+"}, {STEP_REGEX, CJK}, {STEP_REGEX, "\\p{N}"}},
    [SET_FALCON] = {{STEP_REGEX, "[\\p{P}\\$\\+<=>\\^~\\|`]+"}, {STEP_GPT2, NULL},
                    {STEP_REGEX, "[0-9][0-9][0-9]"}},
    [SET_STARCODER] = {{STEP_REGEX, "\\p{N}"}, {STEP_GPT2, NULL}},
    [SET_PORO] = {{STEP_REGEX, PORO}},
    [SET_VIKING] = {{STEP_REGEX, PORO}, {STEP_REGEX, "\\p{N}"}},
};

typedef struct { const char *name; int set; unsigned flags; } pre_name;

/* From llama.cpp's llama_vocab::impl::load: name -> pre-tokenizer and its flags. */
static const pre_name NAMES[] = {
    {"default", SET_DEFAULT, 0},
    {"llama3", SET_LLAMA3, QR_PRE_IGNORE_MERGES | QR_PRE_ADD_BOS},
    {"llama-v3", SET_LLAMA3, QR_PRE_IGNORE_MERGES | QR_PRE_ADD_BOS},
    {"llama-bpe", SET_LLAMA3, QR_PRE_IGNORE_MERGES | QR_PRE_ADD_BOS},
    {"falcon3", SET_LLAMA3, QR_PRE_IGNORE_MERGES | QR_PRE_ADD_BOS},
    {"falcon-h1", SET_LLAMA3, QR_PRE_IGNORE_MERGES | QR_PRE_ADD_BOS},
    {"pixtral", SET_LLAMA3, QR_PRE_IGNORE_MERGES | QR_PRE_ADD_BOS},
    {"midm-2.0", SET_LLAMA3, QR_PRE_IGNORE_MERGES | QR_PRE_ADD_BOS},
    {"lfm2", SET_LLAMA3, QR_PRE_IGNORE_MERGES | QR_PRE_ADD_BOS},
    {"dbrx", SET_LLAMA3, 0},
    {"smaug-bpe", SET_LLAMA3, 0},
    {"glm4", SET_LLAMA3, QR_PRE_NO_BOS},
    {"chatglm-bpe", SET_LLAMA3, QR_PRE_NO_BOS},
    {"deepseek-llm", SET_DEEPSEEK_LLM, QR_PRE_CLEAN_SPACES_OFF},
    {"deepseek-coder", SET_DEEPSEEK_CODER, QR_PRE_CLEAN_SPACES_OFF},
    {"falcon", SET_FALCON, 0},
    {"mpt", SET_GPT2, 0},
    {"gpt-2", SET_GPT2, 0},
    {"phi-2", SET_GPT2, 0},
    {"jina-es", SET_GPT2, 0},
    {"jina-de", SET_GPT2, 0},
    {"gigachat", SET_GPT2, 0},
    {"jina-v2-es", SET_GPT2, 0},
    {"jina-v2-de", SET_GPT2, 0},
    {"a.x-4.0", SET_GPT2, 0},
    {"mellum", SET_GPT2, 0},
    {"modern-bert", SET_GPT2, 0},
    {"exaone4", SET_GPT2, 0},
    {"olmo", SET_GPT2, 0},
    {"jais", SET_GPT2, 0},
    {"jina-v1-en", SET_GPT2, QR_PRE_ADD_SEP},
    {"jina-v2-code", SET_GPT2, QR_PRE_ADD_SEP},
    {"roberta-bpe", SET_GPT2, QR_PRE_ADD_SEP},
    {"starcoder", SET_STARCODER, 0},
    {"refact", SET_STARCODER, 0},
    {"codeshell", SET_STARCODER, 0},
    {"exaone", SET_STARCODER, 0},
    {"minerva-7b", SET_STARCODER, 0},
    {"mellum2", SET_STARCODER, 0},
    {"command-r", SET_STARCODER, QR_PRE_CLEAN_SPACES_OFF},
    {"smollm", SET_STARCODER, QR_PRE_CLEAN_SPACES_OFF},
    {"qwen2", SET_QWEN2, QR_PRE_CLEAN_SPACES_OFF},
    {"deepseek-r1-qwen", SET_QWEN2, QR_PRE_CLEAN_SPACES_OFF},
    {"kormo", SET_QWEN2, QR_PRE_CLEAN_SPACES_OFF},
    {"f2llmv2", SET_QWEN2, QR_PRE_CLEAN_SPACES_OFF},
    {"megrez", SET_QWEN2, 0},
    {"stablelm2", SET_QWEN2, 0},
    {"poro-chat", SET_PORO, QR_PRE_CLEAN_SPACES_OFF},
    {"bloom", SET_PORO, 0},
    {"gpt3-finnish", SET_PORO, 0},
    {"viking", SET_VIKING, QR_PRE_CLEAN_SPACES_OFF},
};
#define N_NAMES (sizeof NAMES / sizeof NAMES[0])

int qr_pretok_lookup(const char *name, int *set, unsigned *flags, qr_error *err) {
    if (name[0] == '\0') name = "default";
    for (size_t i = 0; i < N_NAMES; i++) {
        if (strcmp(NAMES[i].name, name) == 0) {
            *set = NAMES[i].set;
            *flags = NAMES[i].flags;
            return QR_OK;
        }
    }
    char list[1024];
    size_t o = 0;
    for (size_t i = 0; i < N_NAMES && o + 32 < sizeof list; i++) {
        size_t len = strlen(NAMES[i].name);
        if (i) list[o++] = ',', list[o++] = ' ';
        memcpy(list + o, NAMES[i].name, len);
        o += len;
    }
    list[o] = '\0';
    return qr_fail(err, "unsupported tokenizer.ggml.pre '%s' (supported: %s)", name, list);
}

/* ---- compiled splitters ------------------------------------------------------------ */

typedef struct {
    int kind;
    bool collapsed; /* regex over the one-byte-per-code-point text */
    pcre2_code *re;
} step;

struct qr_pretok {
    int n_steps;
    step steps[MAX_STEPS];
    bool need_flags, need_collapsed, need_wide;
};

static const char *const CAT_NAMES[] = {"\\p{N}", "\\p{L}", "\\p{P}", "\\p{M}", "\\p{S}",
                                        "\\p{Lu}", "\\p{Ll}", "\\p{Lt}", "\\p{Lm}", "\\p{Lo}"};
/* Category byte and the ASCII members of each class, as llama.cpp collapses them. */
static const char *const CAT_CLASS[] = {
    "\\x{D1}0-9", "\\x{D2}A-Za-z", "\\x{D3}!-#%-*,-/:-;?-@\\[-\\]_\\{\\}", "\\x{D4}",
    "\\x{D5}\\$\\+<->^`\\|\\~", "\\x{D2}A-Za-z", "\\x{D2}A-Za-z", "\\x{D2}A-Za-z",
    "\\x{D2}A-Za-z", "\\x{D2}A-Za-z"};
#define N_CATS (sizeof CAT_NAMES / sizeof CAT_NAMES[0])

static bool uses_categories(const char *pat) {
    for (size_t i = 0; i < N_CATS; i++) {
        if (strstr(pat, CAT_NAMES[i])) return true;
    }
    return false;
}

/* Rewrites each \p{X} into its collapsed class (bracketed unless already inside []). */
static char *collapse_pattern(const char *pat) {
    size_t n = strlen(pat);
    char *out = malloc(n * 16 + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool inside = false;
    for (size_t i = 0; i < n; i++) {
        if (pat[i] == '[' && (i == 0 || pat[i - 1] != '\\')) {
            out[o++] = '[';
            inside = true;
            continue;
        }
        if (inside && pat[i] == ']' && pat[i - 1] != '\\') {
            out[o++] = ']';
            inside = false;
            continue;
        }
        size_t k = 0;
        for (; k < N_CATS; k++) {
            size_t len = strlen(CAT_NAMES[k]);
            if (strncmp(pat + i, CAT_NAMES[k], len) == 0) break;
        }
        if (k < N_CATS) {
            if (!inside) out[o++] = '[';
            size_t len = strlen(CAT_CLASS[k]);
            memcpy(out + o, CAT_CLASS[k], len);
            o += len;
            if (!inside) out[o++] = ']';
            i += strlen(CAT_NAMES[k]) - 1;
            continue;
        }
        out[o++] = pat[i];
    }
    out[o] = '\0';
    return out;
}

static int compile_step(const step_def *d, step *s, qr_error *err) {
    s->kind = d->kind;
    if (d->kind != STEP_REGEX) return QR_OK;
    s->collapsed = uses_categories(d->pattern);
    char *pat = s->collapsed ? collapse_pattern(d->pattern) : NULL;
    if (s->collapsed && !pat) return qr_fail(err, "out of memory compiling a pre-tokenizer regex");
    const char *p = pat ? pat : d->pattern;
    uint32_t opts = PCRE2_DOLLAR_ENDONLY | (s->collapsed ? 0 : PCRE2_UTF);
    int ec = 0;
    PCRE2_SIZE eo = 0;
    s->re = pcre2_compile((PCRE2_SPTR)p, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
    if (!s->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        qr_fail(err, "pre-tokenizer regex '%s': %s at offset %zu", d->pattern, (const char *)msg, (size_t)eo);
        free(pat);
        return QR_ERR;
    }
    free(pat);
    (void)pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return QR_OK;
}

int qr_pretok_create(int set, qr_pretok **out, qr_error *err) {
    *out = NULL;
    if (set < 0 || set >= N_SETS) return qr_fail(err, "pre-tokenizer set %d out of range", set);
    qr_pretok *p = calloc(1, sizeof *p);
    if (!p) return qr_fail(err, "out of memory");
    for (int i = 0; i < MAX_STEPS && SETS[set][i].kind; i++) {
        if (compile_step(&SETS[set][i], &p->steps[i], err) != QR_OK) {
            qr_pretok_free(p);
            return QR_ERR;
        }
        p->n_steps = i + 1;
        step *s = &p->steps[i];
        if (s->kind != STEP_REGEX) p->need_flags = true;
        else if (s->collapsed) p->need_collapsed = true;
        else p->need_wide = true;
    }
    *out = p;
    return QR_OK;
}

void qr_pretok_free(qr_pretok *p) {
    if (!p) return;
    for (int i = 0; i < MAX_STEPS; i++) pcre2_code_free(p->steps[i].re);
    free(p);
}

/* ---- splitting ---------------------------------------------------------------------- */

static int push(qr_sizes *s, size_t len) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        size_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) return QR_ERR;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = len;
    return QR_OK;
}

#define OUT_OF_RANGE 0xFFFFFFFFu

/* A segment [ini, end) of the code points with their flags; positions outside it read
 * as OUT_OF_RANGE with no flags, which is how llama.cpp's splitters see them. */
typedef struct {
    const uint32_t *cpts;
    const uint16_t *flags;
    size_t ini, end, prev;
    qr_sizes *out;
    int rc;
} seg;

static uint32_t cpt_at(const seg *s, size_t p) { return p >= s->ini && p < s->end ? s->cpts[p] : OUT_OF_RANGE; }
static uint16_t flags_at(const seg *s, size_t p) { return p >= s->ini && p < s->end ? s->flags[p] : 0; }

/* Ends the current word at `end`; returns its length. */
static size_t add_word(seg *s, size_t end) {
    size_t len = end - s->prev;
    if (len > 0) s->rc |= push(s->out, len);
    s->prev = end;
    return len;
}

#define F_WLN (QR_CPT_WHITESPACE | QR_CPT_LETTER | QR_CPT_NUMBER)

/* 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive: length of the match or 0. */
static size_t contraction(const seg *s, size_t pos, bool any_case) {
    if (cpt_at(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    uint32_t a = cpt_at(s, pos + 1);
    if (any_case) a = qr_cpt_tolower(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= s->end) return 0;
    uint32_t b = cpt_at(s, pos + 2);
    if (any_case) b = qr_cpt_tolower(b);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(seg *s) {
    for (size_t pos = s->ini; pos < s->end;) {
        uint32_t c = cpt_at(s, pos);
        uint16_t f = flags_at(s, pos);
        size_t k = contraction(s, pos, false);
        if (k) {
            pos += add_word(s, pos + k);
            continue;
        }
        uint16_t f2 = c == ' ' ? flags_at(s, pos + 1) : f;
        if (f2 & (QR_CPT_LETTER | QR_CPT_NUMBER)) {
            uint16_t want = (f2 & QR_CPT_LETTER) ? QR_CPT_LETTER : QR_CPT_NUMBER;
            pos += (c == ' ');
            while (f2 & want) f2 = flags_at(s, ++pos);
            add_word(s, pos);
            continue;
        }
        if (!(f2 & F_WLN) && f2) {
            pos += (c == ' ');
            while (!(f2 & F_WLN) && f2) f2 = flags_at(s, ++pos);
            add_word(s, pos);
            continue;
        }
        size_t nws = 0;
        while (flags_at(s, pos + nws) & QR_CPT_WHITESPACE) nws++;
        if (nws > 1 && cpt_at(s, pos + nws) != OUT_OF_RANGE) {
            pos += nws - 1;
            add_word(s, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            add_word(s, pos);
            continue;
        }
        add_word(s, ++pos);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+   (Llama-3: 3 digits, Qwen2: 1) */
static void split_llama3(seg *s, size_t max_digits) {
    for (size_t pos = s->ini; pos < s->end;) {
        uint32_t c = cpt_at(s, pos);
        uint16_t f = flags_at(s, pos);
        size_t k = contraction(s, pos, true);
        if (k) {
            pos += add_word(s, pos + k);
            continue;
        }
        if (!(c == '\r' || c == '\n' || (f & QR_CPT_NUMBER))) {
            if ((f & QR_CPT_LETTER) || (flags_at(s, pos + 1) & QR_CPT_LETTER)) {
                pos++;
                while (flags_at(s, pos) & QR_CPT_LETTER) pos++;
                add_word(s, pos);
                continue;
            }
        }
        if (f & QR_CPT_NUMBER) {
            size_t ini = pos;
            while (flags_at(s, pos) & QR_CPT_NUMBER) {
                if (++pos - ini >= max_digits) {
                    add_word(s, pos);
                    ini = pos;
                }
            }
            add_word(s, pos);
            continue;
        }
        uint16_t f2 = c == ' ' ? flags_at(s, pos + 1) : f;
        if (!(f2 & F_WLN) && f) {
            pos += (c == ' ');
            while (!(f2 & F_WLN) && f2) f2 = flags_at(s, ++pos);
            uint32_t c2 = cpt_at(s, pos);
            while (c2 == '\r' || c2 == '\n') c2 = cpt_at(s, ++pos);
            add_word(s, pos);
            continue;
        }
        size_t nws = 0, last_rn = 0;
        while (flags_at(s, pos + nws) & QR_CPT_WHITESPACE) {
            uint32_t c2 = cpt_at(s, pos + nws);
            if (c2 == '\r' || c2 == '\n') last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) {
            pos = last_rn;
            add_word(s, pos);
            continue;
        }
        if (nws > 1 && cpt_at(s, pos + nws) != OUT_OF_RANGE) {
            pos += nws - 1;
            add_word(s, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            add_word(s, pos);
            continue;
        }
        add_word(s, ++pos);
    }
}

typedef struct {
    const uint32_t *cpts;
    size_t n;
    uint16_t *flags;   /* per code point, for the hand-written splitters */
    uint8_t *collapsed; /* one byte per code point */
    char *wide;        /* UTF-8 for the UTF-mode regexes */
    size_t *wide_off;  /* byte offset of each code point in `wide` (n + 1 entries) */
    pcre2_match_data *md;
} split_ctx;

static uint8_t collapse_cpt(uint32_t cp) {
    if (cp < 128) return (uint8_t)cp;
    uint16_t f = qr_cpt_flags(cp);
    if (f & QR_CPT_WHITESPACE) return 0x0B;
    switch (f & QR_CPT_CATEGORY_MASK) {
    case QR_CPT_NUMBER: return 0xD1;
    case QR_CPT_LETTER: return 0xD2;
    case QR_CPT_PUNCT: return 0xD3;
    case QR_CPT_MARK: return 0xD4;
    case QR_CPT_SYMBOL: return 0xD5;
    default: return 0xD0;
    }
}

static int prepare(const qr_pretok *p, split_ctx *c) {
    size_t n = c->n;
    if (p->need_flags) {
        if (!(c->flags = malloc(n * sizeof *c->flags + 1))) return QR_ERR;
        for (size_t i = 0; i < n; i++) c->flags[i] = qr_cpt_flags(c->cpts[i]);
    }
    if (p->need_collapsed) {
        if (!(c->collapsed = malloc(n + 1))) return QR_ERR;
        for (size_t i = 0; i < n; i++) c->collapsed[i] = collapse_cpt(c->cpts[i]);
    }
    if (p->need_wide) {
        c->wide = malloc(n * 4 + 1);
        c->wide_off = malloc((n + 1) * sizeof *c->wide_off);
        if (!c->wide || !c->wide_off) return QR_ERR;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t cp = c->cpts[i];
            if (cp > 0x7F && (qr_cpt_flags(cp) & QR_CPT_WHITESPACE)) cp = 0x0B;
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
            c->wide_off[i] = o;
            o += qr_utf8_encode(cp, c->wide + o);
        }
        c->wide_off[n] = o;
    }
    if (p->need_collapsed || p->need_wide) {
        if (!(c->md = pcre2_match_data_create(1, NULL))) return QR_ERR;
    }
    return QR_OK;
}

/* Maps a byte offset in `wide` back to a code point index, searching forward from hint. */
static size_t cpt_of_byte(const split_ctx *c, size_t byte, size_t hint) {
    while (hint < c->n && c->wide_off[hint] < byte) hint++;
    return hint;
}

/* Runs one regex over the segment [ini, ini+len) (code points); appends match and gap
 * lengths. */
static int regex_segment(const step *st, split_ctx *c, size_t ini, size_t len, qr_sizes *out,
                         qr_error *err) {
    const uint8_t *subj;
    size_t subj_len;
    if (st->collapsed) {
        subj = c->collapsed + ini;
        subj_len = len;
    } else {
        subj = (const uint8_t *)c->wide + c->wide_off[ini];
        subj_len = c->wide_off[ini + len] - c->wide_off[ini];
    }
    size_t start = 0, prev_cpt = 0, cpt_hint = ini;
    int rc = QR_OK;
    while (start <= subj_len) {
        int m = pcre2_match(st->re, subj, subj_len, start, PCRE2_NO_UTF_CHECK, c->md, NULL);
        if (m == PCRE2_ERROR_JIT_STACKLIMIT) { /* the interpreter keeps its frames on the heap */
            m = pcre2_match(st->re, subj, subj_len, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, c->md, NULL);
        }
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(m, msg, sizeof msg);
            return qr_fail(err, "pre-tokenizer regex match failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t mb = ov[0], me = ov[1], ms_cpt, me_cpt;
        if (st->collapsed) {
            ms_cpt = mb, me_cpt = me;
        } else {
            size_t base = c->wide_off[ini];
            ms_cpt = cpt_of_byte(c, base + mb, cpt_hint) - ini;
            me_cpt = cpt_of_byte(c, base + me, ms_cpt + ini) - ini;
            cpt_hint = me_cpt + ini;
        }
        if (me == mb) { /* empty match: step over one code point */
            start = st->collapsed ? me + 1 : me + qr_utf8_seq_len(subj[me < subj_len ? me : 0]);
            continue;
        }
        if (ms_cpt > prev_cpt) rc |= push(out, ms_cpt - prev_cpt);
        rc |= push(out, me_cpt - ms_cpt);
        prev_cpt = me_cpt;
        start = me;
    }
    if (prev_cpt < len) rc |= push(out, len - prev_cpt);
    return rc == QR_OK ? QR_OK : qr_fail(err, "out of memory splitting text");
}

static int run_step(const step *st, split_ctx *c, const qr_sizes *in, qr_sizes *out, qr_error *err) {
    out->n = 0;
    size_t start = 0;
    for (size_t i = 0; i < in->n; i++) {
        size_t len = in->v[i];
        if (st->kind == STEP_REGEX) {
            if (regex_segment(st, c, start, len, out, err) != QR_OK) return QR_ERR;
        } else {
            seg s = {c->cpts, c->flags, start, start + len, start, out, QR_OK};
            if (st->kind == STEP_GPT2) split_gpt2(&s);
            else split_llama3(&s, st->kind == STEP_LLAMA3 ? 3 : 1);
            if (s.rc != QR_OK) return qr_fail(err, "out of memory splitting text");
        }
        start += len;
    }
    return QR_OK;
}

int qr_pretok_split(const qr_pretok *p, const uint32_t *cpts, size_t n, qr_sizes *words,
                    qr_error *err) {
    words->n = 0;
    if (n == 0) return QR_OK;
    split_ctx c = {.cpts = cpts, .n = n};
    qr_sizes tmp = {0};
    int rc = prepare(p, &c);
    if (rc != QR_OK) {
        qr_fail(err, "out of memory splitting %zu code points", n);
    } else {
        rc = push(words, n);
        for (int i = 0; rc == QR_OK && i < p->n_steps; i++) {
            rc = run_step(&p->steps[i], &c, words, &tmp, err);
            qr_sizes sw = *words;
            *words = tmp;
            tmp = sw;
        }
    }
    free(tmp.v);
    free(c.flags);
    free(c.collapsed);
    free(c.wide);
    free(c.wide_off);
    pcre2_match_data_free(c.md);
    return rc;
}
