/* A minimal test harness: CHECK records a failure and goes on, REQUIRE stops the test.
 * A test that cannot run here (no ../shared, no GPU) calls qr_test_skip, which exits 77;
 * ctest reports that as skipped, never as passed. */
#ifndef QR_TESTS_TESTING_H
#define QR_TESTS_TESTING_H

#include <stdio.h>
#include <stdlib.h>

extern int qr_test_failures;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            qr_test_failures++;                                                        \
        }                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            qr_test_failures++;                                                        \
        }                                                                              \
    } while (0)

#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Path of the shared test-data folder ($QUARREL_SHARED, default ../shared), or NULL
 * when it does not exist. */
const char *qr_test_shared_dir(void);
/* Joins the shared folder and a relative path into a static buffer; skips the test
 * (exit 77, with the reason on stderr) when the file is absent. */
const char *qr_test_shared_file_or_skip(const char *rel);
void qr_test_skip(const char *why) __attribute__((noreturn));
/* The model at a path under the shared folder: skipped as above when absent, a failed
 * REQUIRE (with the loader's message) when it does not load. */
struct qr_model *qr_test_load_shared_model(const char *rel);
/* $QUARREL_BIN, the quarrel CLI, or NULL (after printing "SKIPPED part: ... no <what>")
 * when it is not set or not executable: the tests that make models with `quarrel synth`. */
const char *qr_test_quarrel_bin(const char *what);
/* Prints "N failures" or "ok" and returns the process exit code. */
int qr_test_finish(const char *name);

#endif
