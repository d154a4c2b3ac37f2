/* Chat-template detection and rendering. Each family's renderer follows its reference Jinja
 * template statement by statement (which messages it reads, which it trims, where it
 * raises), so the output is byte-identical to rendering that template; the Jinja sources we
 * compare against live in tests/data/chat_templates/. */
#include "tokenizer/chat_template.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- growing output buffer ------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *sb, const char *s, size_t n) {
    if (sb->oom || n == 0) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1) cap *= 2;
        char *p = realloc(sb->buf, cap);
        if (!p) {
            sb->oom = true;
            return;
        }
        sb->buf = p;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_cat(sbuf *sb, const char *s) { sb_put(sb, s, strlen(s)); }

/* ---- Python's str.strip(): Jinja's |trim and .strip() strip Unicode whitespace ------ */

static bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Decodes the UTF-8 sequence at s[0..n); returns its length, or 0 when it is not valid
 * UTF-8 (truncated, overlong, surrogate): such bytes are never whitespace, as Python would
 * not have decoded them at all. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (n == 0) return 0;
    if (s[0] < 0x80) return *cp = s[0], 1;
    size_t len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    uint32_t c = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min_cp[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    return *cp = c, len;
}

/* Length of the whitespace character starting at s, 0 when none. */
static size_t space_at(const char *s, size_t n) {
    uint32_t c = 0;
    size_t len = utf8_decode((const unsigned char *)s, n, &c);
    return len && py_isspace(c) ? len : 0;
}

/* Length of the whitespace character ending at s[n-1], 0 when none. */
static size_t space_before(const char *s, size_t n) {
    size_t start = n;
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char b = (unsigned char)s[n - back];
        if ((b & 0xc0) != 0x80) {
            start = n - back;
            break;
        }
    }
    if (start == n) return 0;
    size_t len = space_at(s + start, n - start);
    return len == n - start ? len : 0;
}

static void sb_put_trimmed(sbuf *sb, const char *s, size_t n) {
    size_t k;
    while (n > 0 && (k = space_at(s, n)) > 0) s += k, n -= k;
    while (n > 0 && (k = space_before(s, n)) > 0) n -= k;
    sb_put(sb, s, n);
}

static void sb_cat_trimmed(sbuf *sb, const char *s) { sb_put_trimmed(sb, s, strlen(s)); }

/* ---- shared helpers ------------------------------------------------------------------- */

typedef struct {
    const qr_chat_style *style;
    const qr_chat_msg *msgs;
    size_t n;
    bool gen;
    const char *bos, *eos;
    sbuf *sb;
    qr_error *err;
} render_ctx;

static bool is_role(const qr_chat_msg *m, const char *role) { return strcmp(m->role, role) == 0; }

static const char *const MSG_ALTERNATE =
    "Conversation roles must alternate user/assistant/user/assistant/...";
static const char *const MSG_ALTERNATE_AFTER_SYSTEM =
    "After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...";

static int template_raises(render_ctx *c, size_t index, const char *why) {
    return qr_fail(c->err, "chat template %s: message %zu (role \"%s\"): %s",
                   qr_chat_template_name(c->style->family), index, c->msgs[index].role, why);
}

/* Writes a BOS/EOS text, failing when the caller gave none. */
static int put_special(render_ctx *c, const char *text, const char *which) {
    if (!text)
        return qr_fail(c->err, "chat template %s: %s is required (the template writes it)",
                       qr_chat_template_name(c->style->family), which);
    sb_cat(c->sb, text);
    return QR_OK;
}

/* Index where the turns start: 1 when messages[0] is a system message that the template
 * takes out of the loop, else 0. */
static size_t leading_system(const render_ctx *c) {
    return c->n > 0 && is_role(&c->msgs[0], "system") ? 1 : 0;
}

/* The alternation check of Llama 2, Mistral and Gemma templates: after the optional
 * system message, even turns are user and odd turns are not. */
static int check_alternation(render_ctx *c, size_t start, const char *why) {
    for (size_t i = start; i < c->n; i++) {
        bool user = is_role(&c->msgs[i], "user");
        if (user != ((i - start) % 2 == 0)) return template_raises(c, i, why);
    }
    return QR_OK;
}

/* ---- renderers, one per family -------------------------------------------------------- */

static int render_chatml(render_ctx *c) {
    if (c->style->default_system[0] && !is_role(&c->msgs[0], "system")) {
        sb_cat(c->sb, "<|im_start|>system\n");
        sb_cat(c->sb, c->style->default_system);
        sb_cat(c->sb, "<|im_end|>\n");
    }
    for (size_t i = 0; i < c->n; i++) {
        sb_cat(c->sb, "<|im_start|>");
        sb_cat(c->sb, c->msgs[i].role);
        sb_cat(c->sb, "\n");
        sb_cat(c->sb, c->msgs[i].content);
        sb_cat(c->sb, "<|im_end|>\n");
    }
    if (c->gen) sb_cat(c->sb, "<|im_start|>assistant\n");
    return QR_OK;
}

/* Llama 2 strips the turn after prepending the <<SYS>> block, so the block is part of the
 * stripped text. */
static void llama2_user(render_ctx *c, const char *sys, const char *content) {
    sbuf tmp = {0};
    if (sys) {
        sb_cat(&tmp, "<<SYS>>\n");
        sb_cat(&tmp, sys);
        sb_cat(&tmp, "\n<</SYS>>\n\n");
    }
    sb_cat(&tmp, content);
    sb_cat(c->sb, "[INST] ");
    if (tmp.oom) c->sb->oom = true;
    else if (tmp.buf) sb_put_trimmed(c->sb, tmp.buf, tmp.len);
    sb_cat(c->sb, " [/INST]");
    free(tmp.buf);
}

static int render_llama2(render_ctx *c) {
    size_t start = leading_system(c);
    const char *sys = start ? c->msgs[0].content : NULL;
    for (size_t i = start; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        size_t k = i - start;
        if (is_role(m, "user") != (k % 2 == 0)) return template_raises(c, i, MSG_ALTERNATE);
        if (is_role(m, "user")) {
            /* Every user turn opens with BOS; the first one is the leading BOS. */
            if (k > 0 && put_special(c, c->bos, "bos_text") != QR_OK) return QR_ERR;
            llama2_user(c, k == 0 ? sys : NULL, m->content);
        } else if (is_role(m, "assistant")) {
            sb_cat(c->sb, " ");
            sb_cat_trimmed(c->sb, m->content);
            sb_cat(c->sb, " ");
            if (put_special(c, c->eos, "eos_text") != QR_OK) return QR_ERR;
        }
    }
    return QR_OK;
}

static void llama3_turn(render_ctx *c, const char *role, const char *content, bool trim) {
    sb_cat(c->sb, "<|start_header_id|>");
    sb_cat(c->sb, role);
    sb_cat(c->sb, "<|end_header_id|>\n\n");
    if (trim) sb_cat_trimmed(c->sb, content);
    else sb_cat(c->sb, content);
    sb_cat(c->sb, "<|eot_id|>");
}

static int render_llama3(render_ctx *c) {
    for (size_t i = 0; i < c->n; i++) llama3_turn(c, c->msgs[i].role, c->msgs[i].content, true);
    if (c->gen || (c->style->flags & QR_CHAT_ALWAYS_PROMPT))
        sb_cat(c->sb, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return QR_OK;
}

static void today(char *buf, size_t size) {
    static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    if (!localtime_r(&now, &tm)) {
        snprintf(buf, size, "26 Jul 2024");
        return;
    }
    snprintf(buf, size, "%02d %s %04d", tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900);
}

/* Llama 3.1 always opens with a system turn carrying the knowledge-cutoff header; the
 * conversation's own system message (trimmed) goes inside it. */
static int render_llama31(render_ctx *c) {
    size_t start = leading_system(c);
    char date[32];
    if (c->style->date[0]) snprintf(date, sizeof date, "%s", c->style->date);
    else today(date, sizeof date);
    sb_cat(c->sb, "<|start_header_id|>system<|end_header_id|>\n\n"
                  "Cutting Knowledge Date: December 2023\nToday Date: ");
    sb_cat(c->sb, date);
    sb_cat(c->sb, "\n\n");
    if (start) sb_cat_trimmed(c->sb, c->msgs[0].content);
    sb_cat(c->sb, "<|eot_id|>");
    for (size_t i = start; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        if (is_role(m, "tool") || is_role(m, "ipython"))
            return qr_fail(c->err, "chat template llama3.1: message %zu: role \"%s\" (tool "
                           "results) is not supported by this renderer", i, m->role);
        llama3_turn(c, m->role, m->content, true);
    }
    if (c->gen) sb_cat(c->sb, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return QR_OK;
}

/* Mistral v1: the system message joins the first user turn. */
static int render_mistral_v1(render_ctx *c) {
    size_t start = leading_system(c);
    if (check_alternation(c, start, MSG_ALTERNATE_AFTER_SYSTEM) != QR_OK) return QR_ERR;
    for (size_t i = start; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        if (is_role(m, "user")) {
            sb_cat(c->sb, " [INST] ");
            if (i == start && start) {
                sb_cat(c->sb, c->msgs[0].content);
                sb_cat(c->sb, "\n\n");
            }
            sb_cat(c->sb, m->content);
            sb_cat(c->sb, " [/INST]");
        } else if (is_role(m, "assistant")) {
            sb_cat(c->sb, " ");
            sb_cat(c->sb, m->content);
            if (put_special(c, c->eos, "eos_text") != QR_OK) return QR_ERR;
        } else {
            return template_raises(c, i, "Only user and assistant roles are supported, with "
                                         "the exception of an initial optional system message!");
        }
    }
    return QR_OK;
}

/* Mistral v3 and v3-tekken: the system message joins the LAST message when that is a user
 * turn (and is dropped otherwise), exactly as the official templates do. */
static int render_mistral_v3(render_ctx *c) {
    bool tekken = c->style->family == QR_CHAT_MISTRAL_V3_TEKKEN;
    size_t start = leading_system(c);
    if (check_alternation(c, start, MSG_ALTERNATE_AFTER_SYSTEM) != QR_OK) return QR_ERR;
    for (size_t i = start; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        if (is_role(m, "user")) {
            sb_cat(c->sb, tekken ? "[INST]" : "[INST] ");
            if (i + 1 == c->n && start) {
                sb_cat(c->sb, c->msgs[0].content);
                sb_cat(c->sb, "\n\n");
            }
            sb_cat(c->sb, m->content);
            sb_cat(c->sb, "[/INST]");
        } else if (is_role(m, "assistant")) {
            if (tekken) {
                sb_cat(c->sb, m->content);
            } else {
                sb_cat(c->sb, " ");
                sb_cat_trimmed(c->sb, m->content);
            }
            if (put_special(c, c->eos, "eos_text") != QR_OK) return QR_ERR;
        } else {
            return template_raises(c, i, "Only user and assistant roles are supported, with "
                                         "the exception of an initial optional system message!");
        }
    }
    return QR_OK;
}

static int render_mistral_v7(render_ctx *c) {
    const char *sp = c->style->family == QR_CHAT_MISTRAL_V7 ? " " : "";
    for (size_t i = 0; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        if (is_role(m, "user")) {
            sb_cat(c->sb, "[INST]"), sb_cat(c->sb, sp);
            sb_cat(c->sb, m->content), sb_cat(c->sb, "[/INST]");
        } else if (is_role(m, "system")) {
            sb_cat(c->sb, "[SYSTEM_PROMPT]"), sb_cat(c->sb, sp);
            sb_cat(c->sb, m->content), sb_cat(c->sb, "[/SYSTEM_PROMPT]");
        } else if (is_role(m, "assistant")) {
            sb_cat(c->sb, sp), sb_cat(c->sb, m->content);
            if (put_special(c, c->eos, "eos_text") != QR_OK) return QR_ERR;
        } else {
            return template_raises(c, i, "Only user, system and assistant roles are supported!");
        }
    }
    return QR_OK;
}

/* Gemma 3: the system message (untrimmed) plus a blank line opens the first user turn.
 * Gemma 1/2 templates reject system messages; we render them the Gemma 3 way. */
static int render_gemma(render_ctx *c) {
    size_t start = leading_system(c);
    for (size_t i = start; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        if (is_role(m, "user") != ((i - start) % 2 == 0)) return template_raises(c, i, MSG_ALTERNATE);
        sb_cat(c->sb, "<start_of_turn>");
        sb_cat(c->sb, is_role(m, "assistant") ? "model" : m->role);
        sb_cat(c->sb, "\n");
        if (i == start && start) {
            sb_cat(c->sb, c->msgs[0].content);
            sb_cat(c->sb, "\n\n");
        }
        sb_cat_trimmed(c->sb, m->content);
        sb_cat(c->sb, "<end_of_turn>\n");
    }
    if (c->gen) sb_cat(c->sb, "<start_of_turn>model\n");
    return QR_OK;
}

static int render_phi3(render_ctx *c) {
    bool strict = c->style->flags & QR_CHAT_SKIP_EMPTY_SYSTEM;
    for (size_t i = 0; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        bool known = is_role(m, "system") || is_role(m, "user") || is_role(m, "assistant");
        if (strict && (!known || (is_role(m, "system") && m->content[0] == '\0'))) continue;
        sb_cat(c->sb, "<|"), sb_cat(c->sb, m->role), sb_cat(c->sb, "|>\n");
        sb_cat(c->sb, m->content), sb_cat(c->sb, "<|end|>\n");
    }
    if (c->gen) sb_cat(c->sb, "<|assistant|>\n");
    else if (c->style->flags & QR_CHAT_EOS_IF_NO_PROMPT) return put_special(c, c->eos, "eos_text");
    return QR_OK;
}

/* The first Phi-3-mini template: system messages are dropped and every user turn is
 * followed by the assistant header, whatever add_generation_prompt says. */
static int render_phi3_legacy(render_ctx *c) {
    for (size_t i = 0; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        if (is_role(m, "user")) {
            sb_cat(c->sb, "<|user|>\n"), sb_cat(c->sb, m->content);
            sb_cat(c->sb, "<|end|>\n<|assistant|>\n");
        } else if (is_role(m, "assistant")) {
            sb_cat(c->sb, m->content), sb_cat(c->sb, "<|end|>\n");
        }
    }
    return QR_OK;
}

static int render_zephyr(render_ctx *c) {
    for (size_t i = 0; i < c->n; i++) {
        const qr_chat_msg *m = &c->msgs[i];
        if (is_role(m, "user") || is_role(m, "system") || is_role(m, "assistant")) {
            sb_cat(c->sb, "<|"), sb_cat(c->sb, m->role), sb_cat(c->sb, "|>\n");
            sb_cat(c->sb, m->content);
            if (put_special(c, c->eos, "eos_text") != QR_OK) return QR_ERR;
            sb_cat(c->sb, "\n");
        }
    }
    if (c->gen) sb_cat(c->sb, "<|assistant|>\n");
    return QR_OK;
}

/* ---- names ---------------------------------------------------------------------------- */

typedef int (*render_fn)(render_ctx *);

static const struct {
    const char *name;
    render_fn render;
} FAMILIES[QR_CHAT_FAMILY_COUNT] = {
    [QR_CHAT_CHATML] = {"chatml", render_chatml},
    [QR_CHAT_LLAMA2] = {"llama2", render_llama2},
    [QR_CHAT_LLAMA3] = {"llama3", render_llama3},
    [QR_CHAT_LLAMA31] = {"llama3.1", render_llama31},
    [QR_CHAT_MISTRAL_V1] = {"mistral-v1", render_mistral_v1},
    [QR_CHAT_MISTRAL_V3] = {"mistral-v3", render_mistral_v3},
    [QR_CHAT_MISTRAL_V3_TEKKEN] = {"mistral-v3-tekken", render_mistral_v3},
    [QR_CHAT_MISTRAL_V7] = {"mistral-v7", render_mistral_v7},
    [QR_CHAT_MISTRAL_V7_TEKKEN] = {"mistral-v7-tekken", render_mistral_v7},
    [QR_CHAT_GEMMA] = {"gemma", render_gemma},
    [QR_CHAT_PHI3] = {"phi3", render_phi3},
    [QR_CHAT_PHI3_LEGACY] = {"phi3-legacy", render_phi3_legacy},
    [QR_CHAT_ZEPHYR] = {"zephyr", render_zephyr},
};

/* Presets: a family plus the variant a particular model's template uses. */
static const struct {
    const char *name;
    qr_chat_family family;
    unsigned flags;
    const char *default_system;
    const char *date;
} PRESETS[] = {
    {"qwen2", QR_CHAT_CHATML, 0, "You are a helpful assistant.", ""},
    {"qwen2.5", QR_CHAT_CHATML, 0,
     "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", ""},
    {"smollm2", QR_CHAT_CHATML, 0, "You are a helpful AI assistant named SmolLM, trained by Hugging Face", ""},
    {"llama3.1", QR_CHAT_LLAMA31, 0, "", "26 Jul 2024"},
    {"llama3.2", QR_CHAT_LLAMA31, 0, "", ""},
    {"phi3", QR_CHAT_PHI3, QR_CHAT_EOS_IF_NO_PROMPT, "", ""},
    {"phi3.5", QR_CHAT_PHI3, QR_CHAT_EOS_IF_NO_PROMPT | QR_CHAT_SKIP_EMPTY_SYSTEM, "", ""},
};

const char *qr_chat_template_name(qr_chat_family family) {
    if ((unsigned)family >= QR_CHAT_FAMILY_COUNT) return "unknown";
    return FAMILIES[family].name;
}

void qr_chat_template_list(char *buf, size_t size) {
    if (size == 0) return;
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < QR_CHAT_FAMILY_COUNT; i++) {
        int k = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", FAMILIES[i].name);
        if (k < 0 || (size_t)k >= size - used) return;
        used += (size_t)k;
    }
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++) {
        if (strcmp(PRESETS[i].name, FAMILIES[PRESETS[i].family].name) == 0) continue;
        int k = snprintf(buf + used, size - used, ", %s", PRESETS[i].name);
        if (k < 0 || (size_t)k >= size - used) return;
        used += (size_t)k;
    }
}

static void style_init(qr_chat_style *out, qr_chat_family family) {
    memset(out, 0, sizeof *out);
    out->family = family;
}

static bool lookup_name(const char *name, qr_chat_style *out) {
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++) {
        if (strcmp(name, PRESETS[i].name) != 0) continue;
        style_init(out, PRESETS[i].family);
        out->flags = PRESETS[i].flags;
        snprintf(out->default_system, sizeof out->default_system, "%s", PRESETS[i].default_system);
        snprintf(out->date, sizeof out->date, "%s", PRESETS[i].date);
        return true;
    }
    for (size_t i = 0; i < QR_CHAT_FAMILY_COUNT; i++) {
        if (strcmp(name, FAMILIES[i].name) != 0) continue;
        style_init(out, (qr_chat_family)i);
        return true;
    }
    return false;
}

int qr_chat_template_from_name(const char *name, qr_chat_style *out, qr_error *err) {
    if (!name || !out) return qr_fail(err, "chat template: name and out must not be NULL");
    if (lookup_name(name, out)) return QR_OK;
    char list[400];
    qr_chat_template_list(list, sizeof list);
    return qr_fail(err, "unknown chat template name \"%.64s\"; supported: %s", name, list);
}

/* ---- detection ------------------------------------------------------------------------ */

static bool has(const char *src, const char *needle) { return strstr(src, needle) != NULL; }

/* Decodes the Jinja (Python) string escapes we meet in templates. Returns false on an
 * escape we do not handle or when the result does not fit. */
static bool unescape_into(const char *s, size_t n, char *out, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\\') {
            if (++i == n) return false;
            switch (s[i]) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case '\\': case '\'': case '"': ch = s[i]; break;
            default: return false;
            }
        }
        if (o + 1 >= size) return false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return true;
}

/* Finds a string literal of the form '<|im_start|>system\n TEXT <|im_end|>...' (the system
 * turn a ChatML template writes when the conversation has none) and stores TEXT. A literal
 * that ends right after "system\n" is the opening of the user's own system turn. */
static int chatml_default_system(const char *src, qr_chat_style *out, qr_error *err) {
    static const char head[] = "<|im_start|>system";
    for (const char *p = strstr(src, head); p; p = strstr(p + 1, head)) {
        char quote = p > src ? p[-1] : 0;
        if (quote != '\'' && quote != '"') continue;
        const char *q = p + sizeof head - 1;
        if (*q == '\n') q += 1;
        else if (q[0] == '\\' && q[1] == 'n') q += 2;
        else continue;
        const char *end = q;
        while (*end && *end != quote && strncmp(end, "<|im_end|>", 10) != 0)
            end += (end[0] == '\\' && end[1]) ? 2 : 1;
        if (*end != '<' || end == q) continue;
        if (!unescape_into(q, (size_t)(end - q), out->default_system, sizeof out->default_system))
            return qr_fail(err, "chat template: the default system prompt at offset %zu has an "
                           "unsupported escape or is longer than %d bytes",
                           (size_t)(q - src), QR_CHAT_DEFAULT_SYSTEM_MAX - 1);
        return QR_OK;
    }
    return QR_OK;
}

/* Llama 3.1 sets `date_string = "26 Jul 2024"` unless strftime_now exists (3.2, 3.3 try
 * strftime_now first, which our renderer reproduces with an empty date = today). */
static void llama31_date(const char *src, qr_chat_style *out) {
    if (has(src, "strftime_now")) return;
    snprintf(out->date, sizeof out->date, "26 Jul 2024");
    const char *p = strstr(src, "set date_string = ");
    if (!p) return;
    p += strlen("set date_string = ");
    char quote = *p;
    if (quote != '"' && quote != '\'') return;
    const char *end = strchr(p + 1, quote);
    if (end && (size_t)(end - p - 1) < sizeof out->date)
        snprintf(out->date, sizeof out->date, "%.*s", (int)(end - p - 1), p + 1);
}

static bool detect_mistral(const char *src, qr_chat_style *out) {
    if (has(src, "[SYSTEM_PROMPT]")) {
        style_init(out, has(src, "[SYSTEM_PROMPT] ") ? QR_CHAT_MISTRAL_V7 : QR_CHAT_MISTRAL_V7_TEKKEN);
    } else if (has(src, "' [INST] ' + system_message")) {
        style_init(out, QR_CHAT_MISTRAL_V1);
    } else if (has(src, "[AVAILABLE_TOOLS]")) {
        bool tekken = has(src, "\"[INST]\"") || has(src, "'[INST]'");
        style_init(out, tekken ? QR_CHAT_MISTRAL_V3_TEKKEN : QR_CHAT_MISTRAL_V3);
    } else if (has(src, "<<SYS>>") && has(src, "bos_token + '[INST] '") && has(src, ".strip()")) {
        style_init(out, QR_CHAT_LLAMA2);
    } else {
        return false;
    }
    return true;
}

static void detect_phi3(const char *src, qr_chat_style *out) {
    if (has(src, "'<|assistant|>' +")) {
        style_init(out, QR_CHAT_PHI3_LEGACY);
        return;
    }
    style_init(out, QR_CHAT_PHI3);
    if (has(src, "{{ eos_token }}{% endif")) out->flags |= QR_CHAT_EOS_IF_NO_PROMPT;
    if (has(src, "'system' and message['content']")) out->flags |= QR_CHAT_SKIP_EMPTY_SYSTEM;
}

static void detect_llama3(const char *src, qr_chat_style *out) {
    if (has(src, "Cutting Knowledge Date")) {
        style_init(out, QR_CHAT_LLAMA31);
        llama31_date(src, out);
        return;
    }
    style_init(out, QR_CHAT_LLAMA3);
    if (!has(src, "add_generation_prompt")) out->flags |= QR_CHAT_ALWAYS_PROMPT;
}

/* The cues, in order; the first family whose cue matches wins. */
static bool detect_family(const char *src, qr_chat_style *out) {
    if (has(src, "<|im_start|>")) {
        /* Phi-4 and SmolVLM reuse <|im_start|> with different layouts. */
        if (has(src, "<|im_sep|>") || has(src, "<end_of_utterance>")) return false;
        style_init(out, QR_CHAT_CHATML);
    } else if (strncmp(src, "mistral", 7) == 0 || has(src, "[INST]")) {
        return detect_mistral(src, out);
    } else if (has(src, "<|assistant|>") && has(src, "<|end|>")) {
        detect_phi3(src, out);
    } else if (has(src, "<|user|>") && has(src, "<|assistant|>") &&
               (has(src, "eos_token") || has(src, "<|endoftext|>")) && !has(src, "[gMASK]")) {
        style_init(out, QR_CHAT_ZEPHYR);
    } else if (has(src, "<start_of_turn>")) {
        style_init(out, QR_CHAT_GEMMA);
    } else if (has(src, "<|start_header_id|>") && has(src, "<|end_header_id|>")) {
        detect_llama3(src, out);
    } else {
        return false;
    }
    return true;
}

int qr_chat_template_detect(const char *jinja_src, qr_chat_style *out, qr_error *err) {
    if (!jinja_src || !out) return qr_fail(err, "chat template: jinja_src and out must not be NULL");
    if (lookup_name(jinja_src, out)) return QR_OK;
    if (!detect_family(jinja_src, out)) {
        char list[400];
        qr_chat_template_list(list, sizeof list);
        return qr_fail(err, "unrecognised chat template (%zu bytes, starts \"%.40s\"); pass "
                       "--chat-template NAME, one of: %s", strlen(jinja_src), jinja_src, list);
    }
    if (out->family == QR_CHAT_CHATML) return chatml_default_system(jinja_src, out, err);
    return QR_OK;
}

/* ---- rendering ------------------------------------------------------------------------ */

static int check_messages(const qr_chat_msg *msgs, size_t n, qr_error *err) {
    if (n == 0) return qr_fail(err, "chat template: the conversation has no messages");
    if (!msgs) return qr_fail(err, "chat template: msgs is NULL");
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return qr_fail(err, "chat template: message %zu has a NULL %s", i,
                           msgs[i].role ? "content" : "role");
    return QR_OK;
}

int qr_chat_apply(const qr_chat_style *style, const qr_chat_msg *msgs, size_t n_msgs,
                  bool add_generation_prompt, const char *bos_text, const char *eos_text,
                  char **out, qr_error *err) {
    if (!style || !out) return qr_fail(err, "chat template: style and out must not be NULL");
    *out = NULL;
    if ((unsigned)style->family >= QR_CHAT_FAMILY_COUNT)
        return qr_fail(err, "chat template: invalid family %d", (int)style->family);
    if (check_messages(msgs, n_msgs, err) != QR_OK) return QR_ERR;
    sbuf sb = {0};
    render_ctx c = {style, msgs, n_msgs, add_generation_prompt, bos_text, eos_text, &sb, err};
    int rc = FAMILIES[style->family].render(&c);
    if (rc == QR_OK && sb.oom) rc = qr_fail(err, "chat template: out of memory");
    if (rc == QR_OK && !sb.buf) {
        sb.buf = calloc(1, 1);
        if (!sb.buf) rc = qr_fail(err, "chat template: out of memory");
    }
    if (rc != QR_OK) {
        free(sb.buf);
        return QR_ERR;
    }
    *out = sb.buf;
    return QR_OK;
}

/* ---- plain-argument wrappers for ctypes ----------------------------------------------- */

static int simple_style(const char *name, const char *jinja_src, qr_chat_style *style,
                        qr_error *err) {
    if (name) return qr_chat_template_from_name(name, style, err);
    return qr_chat_template_detect(jinja_src, style, err);
}

static void copy_err(const qr_error *err, char *msg, size_t size) {
    if (msg && size) snprintf(msg, size, "%s", err->msg);
}

int qr_chat_apply_simple(const char *name, const char *jinja_src, const char *const *roles,
                         const char *const *contents, size_t n_msgs, int add_generation_prompt,
                         const char *bos_text, const char *eos_text, const char *date,
                         char **out, char *err_msg, size_t err_size) {
    qr_error err = {{0}};
    qr_chat_style style;
    qr_chat_msg *msgs = calloc(n_msgs ? n_msgs : 1, sizeof *msgs);
    int rc = msgs ? simple_style(name, jinja_src, &style, &err) : qr_fail(&err, "out of memory");
    if (rc == QR_OK) {
        if (date) snprintf(style.date, sizeof style.date, "%s", date);
        for (size_t i = 0; i < n_msgs; i++) msgs[i] = (qr_chat_msg){roles[i], contents[i]};
        rc = qr_chat_apply(&style, msgs, n_msgs, add_generation_prompt != 0, bos_text, eos_text,
                           out, &err);
    }
    free(msgs);
    if (rc != QR_OK) copy_err(&err, err_msg, err_size);
    return rc;
}

int qr_chat_detect_simple(const char *jinja_src, char *name_out, size_t name_size,
                          char *err_msg, size_t err_size) {
    qr_error err = {{0}};
    qr_chat_style style;
    if (qr_chat_template_detect(jinja_src, &style, &err) != QR_OK) {
        copy_err(&err, err_msg, err_size);
        return QR_ERR;
    }
    if (name_out && name_size) snprintf(name_out, name_size, "%s", qr_chat_template_name(style.family));
    return QR_OK;
}

void qr_chat_free(char *s) { free(s); }
