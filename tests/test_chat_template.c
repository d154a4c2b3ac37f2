/* src/tokenizer/chat_template: family detection from the publishers' Jinja templates
 * (tests/data/chat_templates/), name overrides and their errors, and edge cases of the
 * renderer. Every expected string below is what the family's Jinja template renders for
 * that conversation (tests/chat_template_test.py checks the same cases against jinja2 for
 * every template and conversation; this program runs without Python, under ASan). */
#include <stdlib.h>
#include <string.h>

#include "testing.h"
#include "tokenizer/chat_template.h"

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The data folder: $QUARREL_SOURCE/tests/data/chat_templates, else next to this file. */
static char *read_template(const char *file) {
    char path[4096];
    const char *src = getenv("QUARREL_SOURCE");
    if (src && *src) {
        snprintf(path, sizeof path, "%s/tests/data/chat_templates/%s", src, file);
    } else {
        const char *here = __FILE__;
        const char *slash = strrchr(here, '/');
        int dir = slash ? (int)(slash - here) : 1;
        snprintf(path, sizeof path, "%.*s/data/chat_templates/%s", dir, slash ? here : ".", file);
    }
    char *text = read_text(path);
    if (!text) qr_test_skip("tests/data/chat_templates is not readable (set QUARREL_SOURCE)");
    return text;
}

static const struct {
    const char *file, *family;
} DETECT[] = {
    {"chatml-openhermes-2.5.jinja", "chatml"},
    {"qwen2-7b-instruct.jinja", "chatml"},
    {"qwen2.5-7b-instruct.jinja", "chatml"},
    {"smollm2-instruct.jinja", "chatml"},
    {"llama2-7b-chat.jinja", "llama2"},
    {"llama3-8b-instruct.jinja", "llama3"},
    {"llama3-8b-instruct-early.jinja", "llama3"},
    {"llama3.1-8b-instruct.jinja", "llama3.1"},
    {"llama3.2-3b-instruct.jinja", "llama3.1"},
    {"llama3.3-70b-instruct.jinja", "llama3.1"},
    {"mistral-v1.jinja", "mistral-v1"},
    {"mistral-v3-large-2407.jinja", "mistral-v3"},
    {"mistral-v3-tekken-nemo-2407.jinja", "mistral-v3-tekken"},
    {"mistral-v7-large-2411.jinja", "mistral-v7"},
    {"mistral-v7-tekken-small-3.2.jinja", "mistral-v7-tekken"},
    {"gemma-7b-it.jinja", "gemma"},
    {"gemma2-2b-it.jinja", "gemma"},
    {"gemma3-it.jinja", "gemma"},
    {"phi3-mini.jinja", "phi3-legacy"},
    {"phi3-medium.jinja", "phi3-legacy"},
    {"phi3-small.jinja", "phi3"},
    {"phi3.5-mini-instruct.jinja", "phi3"},
    {"zephyr-7b-beta.jinja", "zephyr"},
};

static qr_chat_style detect_file(const char *file) {
    char *src = read_template(file);
    qr_chat_style style;
    qr_error err = {{0}};
    int rc = qr_chat_template_detect(src, &style, &err);
    CHECK_MSG(rc == QR_OK, "%s: %s", file, err.msg);
    free(src);
    return style;
}

static void test_detect_families(void) {
    for (size_t i = 0; i < sizeof DETECT / sizeof DETECT[0]; i++) {
        qr_chat_style style = detect_file(DETECT[i].file);
        const char *got = qr_chat_template_name(style.family);
        CHECK_MSG(strcmp(got, DETECT[i].family) == 0, "%s: detected %s, want %s", DETECT[i].file,
                  got, DETECT[i].family);
    }
}

/* Variant details the detector reads from the template text. */
static void test_detect_variants(void) {
    qr_chat_style s = detect_file("qwen2.5-7b-instruct.jinja");
    CHECK(strcmp(s.default_system, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") == 0);
    s = detect_file("smollm2-instruct.jinja");
    CHECK(strcmp(s.default_system, "You are a helpful AI assistant named SmolLM, trained by Hugging Face") == 0);
    s = detect_file("chatml-openhermes-2.5.jinja");
    CHECK(s.default_system[0] == '\0');
    s = detect_file("llama3.1-8b-instruct.jinja");
    CHECK(strcmp(s.date, "26 Jul 2024") == 0);
    s = detect_file("llama3.2-3b-instruct.jinja");
    CHECK(s.date[0] == '\0'); /* strftime_now: today */
    s = detect_file("llama3-8b-instruct-early.jinja");
    CHECK(s.flags & QR_CHAT_ALWAYS_PROMPT);
    s = detect_file("llama3-8b-instruct.jinja");
    CHECK(!(s.flags & QR_CHAT_ALWAYS_PROMPT));
    s = detect_file("phi3.5-mini-instruct.jinja");
    CHECK(s.flags == (QR_CHAT_EOS_IF_NO_PROMPT | QR_CHAT_SKIP_EMPTY_SYSTEM));
    s = detect_file("phi3-small.jinja");
    CHECK(s.flags == QR_CHAT_EOS_IF_NO_PROMPT);

    /* A default system prompt with escapes, in a double-quoted literal. */
    qr_error err = {{0}};
    CHECK(qr_chat_template_detect("{{ \"<|im_start|>system\\nIt\\'s \\\"here\\\"\\tnow<|im_end|>\\n\" }}"
                                  "{{ '<|im_start|>' + m }}", &s, &err) == QR_OK);
    CHECK_MSG(strcmp(s.default_system, "It's \"here\"\tnow") == 0, "got [%s]", s.default_system);
}

static void test_detect_errors(void) {
    qr_chat_style s;
    qr_error err = {{0}};
    CHECK(qr_chat_template_detect("{{ messages }} <unknown-format>", &s, &err) == QR_ERR);
    CHECK(strstr(err.msg, "unrecognised chat template") != NULL);
    CHECK(strstr(err.msg, "--chat-template") != NULL);
    CHECK(strstr(err.msg, "chatml") && strstr(err.msg, "gemma") && strstr(err.msg, "zephyr"));
    CHECK(qr_chat_template_detect("", &s, &err) == QR_ERR);
    /* Phi-4 reuses <|im_start|> with another layout: not ChatML. */
    CHECK(qr_chat_template_detect("{{'<|im_start|>' + role + '<|im_sep|>'}}", &s, &err) == QR_ERR);
    CHECK(qr_chat_template_detect(NULL, &s, &err) == QR_ERR);
    /* A bare name is accepted in place of a template, as llama.cpp does. */
    CHECK(qr_chat_template_detect("gemma", &s, &err) == QR_OK && s.family == QR_CHAT_GEMMA);
}

static void test_names(void) {
    static const char *const names[] = {"chatml", "llama2", "llama3", "llama3.1", "llama3.2",
                                        "mistral-v1", "mistral-v3", "mistral-v3-tekken",
                                        "mistral-v7", "mistral-v7-tekken", "gemma", "phi3",
                                        "phi3.5", "phi3-legacy", "zephyr", "qwen2", "qwen2.5",
                                        "smollm2"};
    char list[512];
    qr_chat_template_list(list, sizeof list);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        qr_chat_style s;
        qr_error err = {{0}};
        CHECK_MSG(qr_chat_template_from_name(names[i], &s, &err) == QR_OK, "%s: %s", names[i], err.msg);
        CHECK_MSG(strstr(list, names[i]) != NULL, "%s missing from the list", names[i]);
    }
    for (int f = 0; f < QR_CHAT_FAMILY_COUNT; f++) {
        qr_chat_style s;
        qr_error err = {{0}};
        CHECK(qr_chat_template_from_name(qr_chat_template_name((qr_chat_family)f), &s, &err) == QR_OK);
        CHECK(s.family == (qr_chat_family)f);
    }
    qr_chat_style s;
    qr_error err = {{0}};
    CHECK(qr_chat_template_from_name("gemma4", &s, &err) == QR_ERR);
    CHECK(strstr(err.msg, "\"gemma4\"") && strstr(err.msg, "supported: chatml"));
    CHECK(strcmp(qr_chat_template_name(QR_CHAT_FAMILY_COUNT), "unknown") == 0);
    char tiny[8];
    qr_chat_template_list(tiny, sizeof tiny); /* truncates, stays terminated */
    CHECK(strlen(tiny) < sizeof tiny);
}

/* Renders by style name and compares with the expected text. */
static void expect(const char *name, const qr_chat_msg *m, size_t n, bool gen, const char *want) {
    qr_chat_style s;
    qr_error err = {{0}};
    REQUIRE(qr_chat_template_from_name(name, &s, &err) == QR_OK);
    char *out = NULL;
    int rc = qr_chat_apply(&s, m, n, gen, "<s>", "</s>", &out, &err);
    CHECK_MSG(rc == QR_OK && out && strcmp(out, want) == 0, "%s: got [%s] (%s), want [%s]", name,
              out ? out : "(null)", err.msg, want);
    free(out);
}

static void expect_error(const char *name, const qr_chat_msg *m, size_t n, const char *bos,
                         const char *eos, const char *needle) {
    qr_chat_style s;
    qr_error err = {{0}};
    REQUIRE(qr_chat_template_from_name(name, &s, &err) == QR_OK);
    char *out = (char *)1;
    CHECK_MSG(qr_chat_apply(&s, m, n, true, bos, eos, &out, &err) == QR_ERR, "%s: no error", name);
    CHECK(out == NULL);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message [%s] lacks [%s]", name, err.msg, needle);
}

static void test_system_placement(void) {
    const qr_chat_msg conv[] = {{"system", "SYS"}, {"user", "Hi"}, {"assistant", "Yo"}, {"user", "Q"}};
    /* Gemma 3: the system text opens the first user turn. */
    expect("gemma", conv, 4, true,
           "<start_of_turn>user\nSYS\n\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n"
           "<start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\n");
    /* Mistral v1 puts it in the first user turn, v3 in the last one. */
    expect("mistral-v1", conv, 4, true, " [INST] SYS\n\nHi [/INST] Yo</s> [INST] Q [/INST]");
    expect("mistral-v3", conv, 4, true, "[INST] Hi[/INST] Yo</s>[INST] SYS\n\nQ[/INST]");
    expect("mistral-v3-tekken", conv, 4, false, "[INST]Hi[/INST]Yo</s>[INST]SYS\n\nQ[/INST]");
    /* ... and drops it when the conversation ends with the assistant. */
    expect("mistral-v3", conv, 3, false, "[INST] Hi[/INST] Yo</s>");
    expect("mistral-v7", conv, 4, true,
           "[SYSTEM_PROMPT] SYS[/SYSTEM_PROMPT][INST] Hi[/INST] Yo</s>[INST] Q[/INST]");
    /* Llama 2: BOS before every [INST] except the leading one, which the tokenizer adds. */
    expect("llama2", conv, 4, true, "[INST] <<SYS>>\nSYS\n<</SYS>>\n\nHi [/INST] Yo </s><s>[INST] Q [/INST]");
    expect("phi3-legacy", conv, 4, true, "<|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>\n<|user|>\nQ<|end|>\n<|assistant|>\n");
    expect("phi3", conv, 2, false, "<|system|>\nSYS<|end|>\n<|user|>\nHi<|end|>\n</s>");
    expect("qwen2.5", conv + 1, 1, true,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    expect("zephyr", conv, 2, true, "<|system|>\nSYS</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
}

static void test_empty_and_unicode(void) {
    const qr_chat_msg empty[] = {{"user", ""}, {"assistant", ""}, {"user", ""}};
    expect("gemma", empty, 3, true,
           "<start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n<end_of_turn>\n"
           "<start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n");
    expect("chatml", empty, 1, false, "<|im_start|>user\n<|im_end|>\n");
    const qr_chat_msg empty_sys[] = {{"system", ""}, {"user", "x"}};
    expect("phi3.5", empty_sys, 2, true, "<|user|>\nx<|end|>\n<|assistant|>\n");
    /* Jinja's trim is Python's str.strip: Unicode spaces go (U+3000, U+00A0, U+2028),
     * U+200B (not a space to Python) stays; multi-byte text passes through. */
    const qr_chat_msg uni[] = {{"user", "\xe3\x80\x80" "caf\xc3\xa9 \xf0\x9f\x98\x80\xc2\xa0"},
                               {"assistant", "\xe2\x80\xa8 ok \xe2\x80\x8b"}};
    expect("llama3", uni, 2, false,
           "<|start_header_id|>user<|end_header_id|>\n\ncaf\xc3\xa9 \xf0\x9f\x98\x80<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nok \xe2\x80\x8b<|eot_id|>");
    /* Invalid UTF-8 is kept as bytes, never read past. */
    const qr_chat_msg bad[] = {{"user", " \xe3\x80"}};
    expect("gemma", bad, 1, false, "<start_of_turn>user\n\xe3\x80<end_of_turn>\n");
    /* An overlong encoding of U+0020 is not a space. */
    const qr_chat_msg overlong[] = {{"user", "\xc0\xa0x\xc0\xa0"}};
    expect("gemma", overlong, 1, false, "<start_of_turn>user\n\xc0\xa0x\xc0\xa0<end_of_turn>\n");
    const qr_chat_msg spaces[] = {{"user", " \t\n\xe3\x80\x80 "}};
    expect("gemma", spaces, 1, false, "<start_of_turn>user\n<end_of_turn>\n");
}

static void test_many_turns(void) {
    enum { N = 2001 };
    qr_chat_msg *m = malloc(N * sizeof *m);
    REQUIRE(m);
    for (int i = 0; i < N; i++) m[i] = (qr_chat_msg){i % 2 ? "assistant" : "user", i % 2 ? "b" : "a"};
    qr_chat_style s;
    qr_error err = {{0}};
    REQUIRE(qr_chat_template_from_name("gemma", &s, &err) == QR_OK);
    char *out = NULL;
    REQUIRE(qr_chat_apply(&s, m, N, true, NULL, NULL, &out, &err) == QR_OK);
    size_t user = strlen("<start_of_turn>user\na<end_of_turn>\n");
    size_t model = strlen("<start_of_turn>model\nb<end_of_turn>\n");
    CHECK(strlen(out) == 1001 * user + 1000 * model + strlen("<start_of_turn>model\n"));
    CHECK(strncmp(out + 1001 * user + 1000 * model - user, "<start_of_turn>user\na<end_of_turn>\n", user) == 0);
    free(out);
    /* A long message. */
    size_t big = 1 << 20;
    char *text = malloc(big + 1);
    REQUIRE(text);
    memset(text, 'x', big);
    text[big] = '\0';
    qr_chat_msg one = {"user", text};
    REQUIRE(qr_chat_template_from_name("chatml", &s, &err) == QR_OK);
    REQUIRE(qr_chat_apply(&s, &one, 1, true, NULL, NULL, &out, &err) == QR_OK);
    CHECK(strlen(out) == big + strlen("<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"));
    free(out);
    free(text);
    free(m);
}

static void test_apply_errors(void) {
    const qr_chat_msg twice[] = {{"user", "a"}, {"user", "b"}};
    expect_error("gemma", twice, 2, NULL, NULL, "must alternate");
    expect_error("llama2", twice, 2, "<s>", "</s>", "must alternate");
    expect_error("mistral-v3", twice, 2, "<s>", "</s>", "After the optional system message");
    const qr_chat_msg tool[] = {{"user", "a"}, {"tool", "b"}};
    expect_error("mistral-v1", tool, 2, "<s>", "</s>", "Only user and assistant roles");
    expect_error("mistral-v7", tool, 2, "<s>", "</s>", "Only user, system and assistant");
    expect_error("llama3.1", tool, 2, NULL, NULL, "not supported");
    const qr_chat_msg turn[] = {{"user", "a"}, {"assistant", "b"}, {"user", "c"}};
    expect_error("llama2", turn, 3, "<s>", NULL, "eos_text");
    expect_error("llama2", turn, 3, NULL, "</s>", "bos_text");
    expect_error("zephyr", turn, 1, NULL, NULL, "eos_text");
    expect_error("chatml", turn, 0, NULL, NULL, "no messages");
    const qr_chat_msg null_content[] = {{"user", NULL}};
    expect_error("chatml", null_content, 1, NULL, NULL, "NULL content");
    qr_chat_style s = {0};
    qr_error err = {{0}};
    char *out = NULL;
    s.family = QR_CHAT_FAMILY_COUNT;
    CHECK(qr_chat_apply(&s, turn, 1, true, NULL, NULL, &out, &err) == QR_ERR);
    CHECK(qr_chat_apply(NULL, turn, 1, true, NULL, NULL, &out, &err) == QR_ERR);
    /* Families that never write BOS/EOS work without them. */
    REQUIRE(qr_chat_template_from_name("llama3", &s, &err) == QR_OK);
    CHECK(qr_chat_apply(&s, turn, 3, true, NULL, NULL, &out, &err) == QR_OK);
    free(out);
}

static void test_today(void) {
    qr_chat_style s;
    qr_error err = {{0}};
    REQUIRE(qr_chat_template_from_name("llama3.2", &s, &err) == QR_OK);
    const qr_chat_msg m[] = {{"user", "hi"}};
    char *out = NULL;
    REQUIRE(qr_chat_apply(&s, m, 1, false, NULL, NULL, &out, &err) == QR_OK);
    const char *p = strstr(out, "Today Date: ");
    REQUIRE(p);
    p += strlen("Today Date: ");
    /* "DD Mon YYYY" */
    CHECK(p[0] >= '0' && p[0] <= '3' && p[2] == ' ' && p[6] == ' ' && p[11] == '\n');
    free(out);
}

int main(void) {
    test_detect_families();
    test_detect_variants();
    test_detect_errors();
    test_names();
    test_system_placement();
    test_empty_and_unicode();
    test_many_turns();
    test_apply_errors();
    test_today();
    return qr_test_finish("test_chat_template");
}
