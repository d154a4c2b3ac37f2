#include "gguf/types.h"

#include <strings.h>

static const qr_type_traits TRAITS[QR_TYPE_COUNT] = {
    [QR_TYPE_F32] = {"F32", 1, 4, false},
    [QR_TYPE_F16] = {"F16", 1, 2, false},
    [QR_TYPE_BF16] = {"BF16", 1, 2, false},
    [QR_TYPE_Q4_0] = {"Q4_0", 32, 18, true},
    [QR_TYPE_Q4_1] = {"Q4_1", 32, 20, true},
    [QR_TYPE_Q5_0] = {"Q5_0", 32, 22, true},
    [QR_TYPE_Q5_1] = {"Q5_1", 32, 24, true},
    [QR_TYPE_Q8_0] = {"Q8_0", 32, 34, true},
    [QR_TYPE_Q8_1] = {"Q8_1", 32, 36, true}, /* C struct size; gguf-py says 40 */
    [QR_TYPE_Q2_K] = {"Q2_K", 256, 84, true},
    [QR_TYPE_Q3_K] = {"Q3_K", 256, 110, true},
    [QR_TYPE_Q4_K] = {"Q4_K", 256, 144, true},
    [QR_TYPE_Q5_K] = {"Q5_K", 256, 176, true},
    [QR_TYPE_Q6_K] = {"Q6_K", 256, 210, true},
    [QR_TYPE_Q8_K] = {"Q8_K", 256, 292, true},
    [QR_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, true},
    [QR_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, true},
};

const qr_type_traits *qr_type_get_traits(uint32_t id) {
    if (id >= QR_TYPE_COUNT || TRAITS[id].name == NULL) return NULL;
    return &TRAITS[id];
}

const char *qr_type_name(qr_type type) {
    const qr_type_traits *t = qr_type_get_traits((uint32_t)type);
    return t ? t->name : "unknown";
}

int qr_type_from_name(const char *name) {
    for (int i = 0; i < QR_TYPE_COUNT; i++) {
        if (TRAITS[i].name && strcasecmp(TRAITS[i].name, name) == 0) return i;
    }
    return -1;
}
