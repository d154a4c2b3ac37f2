#include "testing.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quarrel.h"

int qr_test_failures = 0;

const char *qr_test_shared_dir(void) {
    const char *d = getenv("QUARREL_SHARED");
    if (!d || !*d) d = "../shared";
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return d;
}

void qr_test_skip(const char *why) {
    fprintf(stderr, "SKIPPED: %s\n", why);
    exit(77);
}

const char *qr_test_shared_file_or_skip(const char *rel) {
    static char path[4096];
    const char *d = qr_test_shared_dir();
    if (!d) qr_test_skip("the shared test-data folder (../shared or $QUARREL_SHARED) is absent");
    snprintf(path, sizeof path, "%s/%s", d, rel);
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "SKIPPED: %s is absent\n", path);
        exit(77);
    }
    return path;
}

qr_model *qr_test_load_shared_model(const char *rel) {
    const char *path = qr_test_shared_file_or_skip(rel);
    char err[512];
    qr_model *m = qr_model_load(path, err, sizeof err);
    if (!m) fprintf(stderr, "%s\n", err);
    REQUIRE(m != NULL);
    return m;
}

const char *qr_test_quarrel_bin(const char *what) {
    const char *bin = getenv("QUARREL_BIN");
    if (bin && access(bin, X_OK) == 0) return bin;
    printf("SKIPPED part: QUARREL_BIN not set, no %s\n", what);
    return NULL;
}

int qr_test_finish(const char *name) {
    if (qr_test_failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, qr_test_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}
