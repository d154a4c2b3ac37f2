/* Public API for descriptor overrides (include/quarrel.h: qr_model_load_with,
 * qr_model_describe_json). Overrides are applied after the model is bound: they may only
 * change compute semantics, never the sizes the weights were checked against
 * (src/model/descriptor_json.c enforces that). */
#include "quarrel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/model.h"

static void set_err(char *err, size_t n, const qr_error *e) {
    if (err && n > 0) snprintf(err, n, "%s", e->msg);
}

qr_model_params qr_model_default_params(void) {
    qr_model_params p = {.arch_config_path = NULL, .swa_window = -1};
    return p;
}

static int apply_overrides(qr_model *m, const qr_model_params *p, qr_error *e) {
    if (p->arch_config_path && qr_descriptor_apply_json_file(&m->desc, p->arch_config_path, e) != QR_OK) return QR_ERR;
    if (p->swa_window < -1) return qr_fail(e, "swa_window must be -1 (from the file), 0 (none) or a window (got %d)", p->swa_window);
    if (p->swa_window >= 0 && qr_descriptor_set_swa(&m->desc, p->swa_window, e) != QR_OK) return QR_ERR;
    if (p->arch_config_path || p->swa_window >= 0) {
        QR_LOG_INFO("model", "descriptor overrides applied: n_swa %u, swa_pattern %u", m->desc.n_swa,
                    m->desc.swa_pattern);
    }
    return QR_OK;
}

qr_model *qr_model_load_with(const char *path, const qr_model_params *p, char *err, size_t err_size) {
    qr_model *m = qr_model_load(path, err, err_size);
    if (!m || !p) return m;
    qr_error e = {{0}};
    if (apply_overrides(m, p, &e) != QR_OK) {
        set_err(err, err_size, &e);
        qr_model_free(m);
        return NULL;
    }
    return m;
}

int32_t qr_model_describe_json(const qr_model *m, char *buf, int32_t cap) {
    qr_error e = {{0}};
    char *json = NULL;
    if (qr_descriptor_to_json(&m->desc, &json, &e) != QR_OK) return -1;
    size_t len = strlen(json);
    if (len > INT32_MAX - 1) {
        free(json);
        return -1;
    }
    if (buf && cap > 0) {
        size_t n = len < (size_t)cap - 1 ? len : (size_t)cap - 1;
        memcpy(buf, json, n);
        buf[n] = '\0';
    }
    free(json);
    return (int32_t)len;
}
