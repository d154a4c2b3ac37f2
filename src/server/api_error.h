/* Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP
 * status. Every refusal of the server is one of these. */
#ifndef QS_API_ERROR_H
#define QS_API_ERROR_H

typedef struct qs_api_error {
    int status;         /* HTTP status, e.g. 400 */
    const char *type;   /* "invalid_request_error", "authentication_error", ... */
    const char *param;  /* the request field at fault, or NULL */
    const char *code;   /* a machine-readable code, or NULL */
    char message[384];
} qs_api_error;

/* Fills e and returns -1, so call sites read `return qs_api_fail(e, 400, ...);`. */
int qs_api_fail(qs_api_error *e, int status, const char *type, const char *param, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The JSON body of e (malloc'd, NUL-terminated); NULL on out of memory. */
char *qs_api_error_json(const qs_api_error *e);

#endif
