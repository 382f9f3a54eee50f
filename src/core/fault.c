/* src/core/fault.c: QGATE_FAULT (see fault.h). */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"

static const char *const kind_names[3] = {"alloc", "build", "launch"};
static const char *const kind_words[3] = {"buffer allocation", "program build",
                                          "kernel launch"};
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int enabled, counting;
static long target[3];          /* 0: never */
static long count[3];

static void print_counts(void)
{
    fprintf(stderr, "qgate: QGATE_FAULT counts: alloc %ld, build %ld, launch %ld\n",
            __atomic_load_n(&count[0], __ATOMIC_RELAXED),
            __atomic_load_n(&count[1], __ATOMIC_RELAXED),
            __atomic_load_n(&count[2], __ATOMIC_RELAXED));
}

static void parse(void)
{
    const char *v = getenv("QGATE_FAULT");
    if (!v || !*v)
        return;
    enabled = 1;
    if (strcmp(v, "count") == 0) {
        counting = 1;
        atexit(print_counts);
        return;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':'), *end = NULL;
        int k = -1;
        if (colon) {
            *colon = 0;
            for (int i = 0; i < 3; i++)
                if (strcmp(t, kind_names[i]) == 0)
                    k = i;
        }
        long n = colon ? strtol(colon + 1, &end, 10) : 0;
        if (k < 0 || !end || *end || n < 1) {
            fprintf(stderr, "qgate: warning: ignoring QGATE_FAULT entry '%s' (expected "
                    "alloc:N, build:N or launch:N with N >= 1, or count)\n", t);
            continue;
        }
        target[k] = n;
    }
}

int qg__fault(qg_fault_kind kind)
{
    pthread_once(&once, parse);
    if (!enabled)
        return 0;
    long n = __atomic_add_fetch(&count[kind], 1, __ATOMIC_RELAXED);
    if (counting || n != target[kind])
        return 0;
    fprintf(stderr, "qgate: QGATE_FAULT: failing %s #%ld\n", kind_words[kind], n);
    return 1;
}
