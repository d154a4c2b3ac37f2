#include "tokenizer/unicode.h"

#include <utf8proc.h>

size_t qr_utf8_seq_len(uint8_t lead) {
    static const uint8_t by_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_nibble[lead >> 4];
}

static bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

uint32_t qr_utf8_decode(const uint8_t *s, size_t n, size_t *pos) {
    size_t i = *pos;
    uint8_t c = s[i];
    if (c < 0x80) {
        *pos = i + 1;
        return c;
    }
    uint32_t cp = 0;
    size_t len = 0;
    if ((c & 0x40) == 0) {
        len = 0; /* stray continuation byte */
    } else if ((c & 0x20) == 0) {
        if (i + 1 < n && is_cont(s[i + 1])) {
            cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
            len = 2;
        }
    } else if ((c & 0x10) == 0) {
        if (i + 2 < n && is_cont(s[i + 1]) && is_cont(s[i + 2])) {
            cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            len = 3;
        }
    } else if ((c & 0x08) == 0) {
        if (i + 3 < n && is_cont(s[i + 1]) && is_cont(s[i + 2]) && is_cont(s[i + 3])) {
            cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
                 ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            len = 4;
        }
    }
    /* Above U+10FFFF llama.cpp would throw while re-encoding; we map it to U+FFFD. */
    if (len == 0 || cp > 0x10FFFF) {
        *pos = i + 1;
        return 0xFFFD;
    }
    *pos = i + len;
    return cp;
}

size_t qr_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t qr_utf8_complete_prefix(const uint8_t *s, size_t n) {
    /* Look back at most 3 bytes for the start of the last sequence. */
    size_t back = 0;
    while (back < 4 && back < n && is_cont(s[n - 1 - back])) back++;
    if (back == n || back == 4) return n; /* only continuation bytes: nothing to wait for */
    size_t lead_pos = n - 1 - back;
    uint8_t lead = s[lead_pos];
    size_t need = qr_utf8_seq_len(lead);
    if (need == 1) return n;
    return back + 1 >= need ? n : lead_pos;
}

static bool is_whitespace(uint32_t cp) {
    if (cp <= 0x20) return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
    if (cp < 0x85) return false;
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

static uint16_t category_flag(utf8proc_category_t c) {
    switch (c) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return QR_CPT_LETTER;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return QR_CPT_MARK;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return QR_CPT_NUMBER;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return QR_CPT_PUNCT;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
        return QR_CPT_SYMBOL;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        return QR_CPT_SEPARATOR;
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        return QR_CPT_CONTROL;
    default:
        return QR_CPT_UNDEFINED;
    }
}

/* ASCII is by far the most common input: answer it from a constant table. */
static uint16_t ascii_flags(uint32_t cp) {
    if (cp >= '0' && cp <= '9') return QR_CPT_NUMBER;
    if ((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z')) return QR_CPT_LETTER;
    if (cp == ' ') return QR_CPT_SEPARATOR | QR_CPT_WHITESPACE;
    if (cp < 0x20 || cp == 0x7F) return QR_CPT_CONTROL | (is_whitespace(cp) ? QR_CPT_WHITESPACE : 0);
    switch (cp) {
    case '$': case '+': case '<': case '=': case '>': case '^': case '`': case '|': case '~':
        return QR_CPT_SYMBOL;
    default:
        return QR_CPT_PUNCT;
    }
}

uint16_t qr_cpt_flags(uint32_t cp) {
    if (cp < 0x80) return ascii_flags(cp);
    if (cp > 0x10FFFF) return 0;
    uint16_t f = category_flag(utf8proc_category((utf8proc_int32_t)cp));
    if (is_whitespace(cp)) f |= QR_CPT_WHITESPACE;
    return f;
}

uint32_t qr_cpt_tolower(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    if (cp > 0x10FFFF) return cp;
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
}

uint32_t qr_cpt_nfd_first(uint32_t cp) {
    if (cp < 0xC0 || cp > 0x10FFFF) return cp;
    utf8proc_int32_t buf[8];
    int last_boundclass = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, buf, 8,
                                                 UTF8PROC_DECOMPOSE, &last_boundclass);
    return n >= 1 && n <= 8 ? (uint32_t)buf[0] : cp;
}

static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t qr_byte_to_cpt(uint8_t b) {
    if (byte_is_printable(b)) return b;
    /* The 68 other bytes, ascending, take U+0100, U+0101, ... */
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++) {
        if (!byte_is_printable(x)) n++;
    }
    return 0x100 + n;
}

int qr_cpt_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    unsigned n = 0;
    for (unsigned x = 0; x < 256; x++) {
        if (!byte_is_printable(x)) {
            if (n == cp - 0x100) return (int)x;
            n++;
        }
    }
    return -1;
}
