#include "testing.h"

#include <string.h>
#include <sys/stat.h>

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

int qr_test_finish(const char *name) {
    if (qr_test_failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, qr_test_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}
