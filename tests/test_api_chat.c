/* The public chat-template functions (include/quarrel.h, src/engine/api_chat.c) on
 * stories260K (../shared), a model without tokenizer.chat_template: the missing template is
 * reported, names and Jinja cues select a family, the output has the published layouts
 * (ChatML, Gemma, Zephyr with the vocabulary's EOS text "</s>"), and the snprintf-style
 * sizing contract holds. The layouts are the templates' own (docs/chat-templates.md),
 * checked byte for byte against Jinja by tests/chat_template_test.py. */
#include <string.h>

#include "quarrel.h"
#include "testing.h"

static void test_no_template(const qr_model *m) {
    char buf[16] = "untouched";
    char err[512] = "";
    CHECK(qr_model_chat_template(m, buf, sizeof buf) == -1);
    CHECK(strcmp(buf, "untouched") == 0);
    const qr_chat_message u = {"user", "Hi"};
    CHECK(qr_chat_format(m, NULL, &u, 1, true, NULL, 0, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "tokenizer.chat_template") != NULL, "%s", err);
    err[0] = '\0';
    CHECK(qr_chat_format(m, "no-such-template", &u, 1, true, NULL, 0, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "chatml") && strstr(err, "gemma"), "%s", err);
}

static void expect(const qr_model *m, const char *tmpl, const qr_chat_message *msgs, int32_t n, const char *want) {
    char buf[512], err[512] = "";
    const int32_t len = qr_chat_format(m, tmpl, msgs, n, true, buf, sizeof buf, err, sizeof err);
    CHECK_MSG(len == (int32_t)strlen(want) && strcmp(buf, want) == 0, "%s: got %d '%s' (%s)", tmpl, len,
              len >= 0 ? buf : "", err);
}

static void test_layouts(const qr_model *m) {
    const qr_chat_message sys_user[] = {{"system", "S"}, {"user", "U"}};
    expect(m, "chatml", sys_user, 2,
           "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
    const qr_chat_message conv[] = {{"user", "Hi"}, {"assistant", " Hello! "}, {"user", "Bye"}};
    expect(m, "gemma", conv, 3,
           "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
           "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
    /* Jinja source is recognised by its cues. */
    expect(m, "{% for m in messages %}<start_of_turn>{{ m['content'] }}{% endfor %}", conv, 1,
           "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    /* Zephyr closes turns with the EOS token's text, taken from the vocabulary. */
    expect(m, "zephyr", conv, 1, "<|user|>\nHi</s>\n<|assistant|>\n");
    char err[512] = "";
    const qr_chat_message twice[] = {{"user", "a"}, {"user", "b"}};
    CHECK(qr_chat_format(m, "gemma", twice, 2, true, NULL, 0, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "alternate") != NULL, "%s", err);
}

static void test_sizing(const qr_model *m) {
    const qr_chat_message u = {"user", "Hello"};
    const char *want = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n";
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(qr_chat_format(m, "chatml", &u, 1, true, NULL, 0, NULL, 0) == (int32_t)strlen(want));
    CHECK(qr_chat_format(m, "chatml", &u, 1, true, small, sizeof small, NULL, 0) == (int32_t)strlen(want));
    CHECK(memcmp(small, want, 7) == 0 && small[7] == '\0');
    /* Without a generation prompt the text ends after the last turn. */
    char buf[128];
    CHECK(qr_chat_format(m, "chatml", &u, 1, false, buf, sizeof buf, NULL, 0) > 0);
    CHECK(strcmp(buf, "<|im_start|>user\nHello<|im_end|>\n") == 0);
}

int main(void) {
    qr_model *m = qr_test_load_shared_model("models/stories260K.gguf");
    test_no_template(m);
    test_layouts(m);
    test_sizing(m);
    qr_model_free(m);
    return qr_test_finish("test_api_chat");
}
