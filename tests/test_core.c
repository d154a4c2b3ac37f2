/* src/core: fp16/bf16 conversions against the CPU's own F16C conversion instructions (an
 * independent implementation), error formatting, and the structured log's text and JSON
 * lines. */
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/fp16.h"
#include "core/log.h"
#include "testing.h"

__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

static void test_f16_to_f32_all_values(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t hb = (uint16_t)h;
        float want = hw_f16_to_f32(hb), got = qr_f16_to_f32(hb);
        if (isnan(want) ? !isnan(got) : qr_f32_bits(want) != qr_f32_bits(got)) bad++;
    }
    CHECK_MSG(bad == 0, "%d of 65536 halves convert differently", bad);
}

/* Round to nearest even, overflow to inf, subnormals, NaN: compare with the hardware's
 * correctly rounded conversion over a sweep of bit patterns. */
static void test_f32_to_f16_sweep(void) {
    int bad = 0;
    for (uint64_t u = 0; u <= 0xffffffffull; u += 0x1357) {
        float f = qr_bits_f32((uint32_t)u);
        uint16_t want = hw_f32_to_f16(f);
        uint16_t got = qr_f32_to_f16(f);
        if (isnan(f) ? (got & 0x7c00) != 0x7c00 || !(got & 0x3ff) : got != want) bad++;
    }
    CHECK_MSG(bad == 0, "%d f32->f16 conversions differ from the compiler's", bad);
}

static void test_bf16(void) {
    CHECK(qr_f32_to_bf16(1.0f) == 0x3f80);
    /* 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (down). */
    CHECK(qr_f32_to_bf16(qr_bits_f32(0x3f808000)) == 0x3f80);
    CHECK(qr_f32_to_bf16(qr_bits_f32(0x3f818000)) == 0x3f82);
    CHECK(qr_f32_to_bf16(qr_bits_f32(0x3f808001)) == 0x3f81);
    uint16_t qnan = qr_f32_to_bf16(qr_bits_f32(0x7f800001)); /* signalling NaN gets quieted */
    CHECK((qnan & 0x7f80) == 0x7f80 && (qnan & 0x40));
    CHECK(qr_bf16_to_f32(0xc000) == -2.0f);
}

static void test_errors(void) {
    qr_error err;
    CHECK(qr_fail(&err, "field '%s' at offset %d", "n_tensors", 24) == QR_ERR);
    CHECK(strcmp(err.msg, "field 'n_tensors' at offset 24") == 0);
    CHECK(qr_fail_prefix(&err, "%s: ", "model.gguf") == QR_ERR);
    CHECK(strcmp(err.msg, "model.gguf: field 'n_tensors' at offset 24") == 0);
    CHECK(qr_fail(NULL, "ignored") == QR_ERR);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    qr_fail(&err, "%s", big);
    qr_fail_prefix(&err, "p: ");
    CHECK(strlen(err.msg) == sizeof err.msg - 1 && strncmp(err.msg, "p: xxx", 6) == 0);
}

static char *capture_log(qr_log_format format, qr_log_level level, const char *msg) {
    static char buf[4096];
    memset(buf, 0, sizeof buf);
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    REQUIRE(f);
    qr_log_set_stream(f);
    qr_log_set_format(format);
    qr_log_write(level, "test", "%s", msg);
    fclose(f);
    qr_log_set_stream(NULL);
    return buf;
}

static void test_log(void) {
    qr_log_set_level(QR_LOG_INFO);
    char *line = capture_log(QR_LOG_TEXT, QR_LOG_INFO, "hello 42");
    CHECK(strstr(line, " info  test: hello 42\n") != NULL);
    line = capture_log(QR_LOG_JSON, QR_LOG_WARN, "quote \" tab \t nl \n done");
    CHECK(strstr(line, "\"level\":\"warn\",\"module\":\"test\",\"msg\":\"quote \\\" tab \\t nl \\n done\"}\n") != NULL);
    CHECK(strncmp(line, "{\"ts\":\"", 7) == 0);
    line = capture_log(QR_LOG_TEXT, QR_LOG_DEBUG, "filtered");
    CHECK(line[0] == '\0');
    qr_log_level lv;
    qr_log_format fm;
    CHECK(qr_log_parse_level("error", &lv) == 0 && lv == QR_LOG_ERROR);
    CHECK(qr_log_parse_level("loud", &lv) == -1);
    CHECK(qr_log_parse_format("json", &fm) == 0 && fm == QR_LOG_JSON);
    CHECK(qr_log_parse_format("xml", &fm) == -1);
    qr_log_set_level(QR_LOG_WARN);
    qr_log_set_format(QR_LOG_TEXT);
}

int main(void) {
    if (cpu_has_f16c()) {
        test_f16_to_f32_all_values();
        test_f32_to_f16_sweep();
    } else {
        fprintf(stderr, "note: no F16C on this CPU; fp16 conversion sweep not run\n");
    }
    test_bf16();
    test_errors();
    test_log();
    return qr_test_finish("test_core");
}
