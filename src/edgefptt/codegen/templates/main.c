/* Train on the embedded batch: one pass of K partitions, then the per-group counters.
 *
 *   train_host [-t THREADS] [--dump FILE] [--time PASSES]
 *
 * Prints `loss <partition> <value>` per partition, then `group <name> <count>` per kernel
 * group (nanoseconds on the host, cycles with rdcycle). --dump writes the trained parameters
 * (W, b, W_y, b_y) and the inference logits (B, C) as little-endian float32. --time runs that
 * many more passes and prints `pass_s <seconds>`, the fastest of them.
 * Bare metal (EDGEFPTT_BAREMETAL=1): the same lines; the pass runs on the EDGEFPTT_HARTS harts
 * the start-up code started (-t is checked but not used); --dump, which needs a file system, is
 * hosted only, and --time prints `pass_counter <ticks>` (the board's cycle counter) instead. */
#if !EDGEFPTT_BAREMETAL
#define _POSIX_C_SOURCE 200809L
#include <time.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgefptt.h"

#if !EDGEFPTT_BAREMETAL
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int dump(const char *path, int threads)
{
    FILE *out = fopen(path, "wb");
    if (out == NULL)
        return 0;
    for (int w = 0; w < EDGEFPTT_NUM_PARAMS; ++w)
        for (int i = 0; i < edgefptt_param_size(w); ++i) { /* one by one: no buffer of size */
            float v = edgefptt_param_value(w, i);
            fwrite(&v, sizeof v, 1, out);
        }
    float logits[EDGEFPTT_BATCH_SIZE * EDGEFPTT_NUM_CLASSES];
    edgefptt_infer(edgefptt_samples_x, logits, threads);
    fwrite(logits, sizeof(float), sizeof logits / sizeof logits[0], out);
    return fclose(out) == 0;
}
#endif

int main(int argc, char **argv)
{
    int threads = EDGEFPTT_DEFAULT_THREADS, passes = 0;
    const char *dump_path = NULL;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) {
            dump_path = argv[++i];
        } else if (strcmp(argv[i], "--time") == 0 && i + 1 < argc) {
            passes = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [-t THREADS] [--dump FILE] [--time PASSES]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > EDGEFPTT_MAX_THREADS) {
        fprintf(stderr, "error: -t takes 1 to %d threads\n", EDGEFPTT_MAX_THREADS);
        return 2;
    }
#if EDGEFPTT_BAREMETAL
    if (dump_path != NULL) {
        fprintf(stderr, "error: --dump needs a hosted build (make host)\n");
        return 2;
    }
#endif
    float losses[EDGEFPTT_PARTITIONS];
    edgefptt_init();
    edgefptt_train(edgefptt_samples_x, edgefptt_samples_labels, losses, threads);
    for (int p = 0; p < EDGEFPTT_PARTITIONS; ++p)
        printf("loss %d %.9g\n", p, (double)losses[p]);
    for (int g = 0; g < EF_NUM_GROUPS; ++g)
        printf("group %s %llu\n", ef_group_names[g], (unsigned long long)ef_group_counts[g]);
#if EDGEFPTT_BAREMETAL
    if (passes > 0) { /* the fewest counter ticks (board cycles) of the extra passes */
        float scratch[EDGEFPTT_PARTITIONS];
        uint64_t best = UINT64_MAX;
        for (int i = 0; i < passes; ++i) {
            uint64_t start = ef_counter();
            edgefptt_train(edgefptt_samples_x, edgefptt_samples_labels, scratch, threads);
            uint64_t took = ef_counter() - start;
            best = took < best ? took : best;
        }
        printf("pass_counter %llu\n", (unsigned long long)best);
    }
#else
    if (dump_path != NULL && !dump(dump_path, threads)) {
        fprintf(stderr, "error: cannot write %s\n", dump_path);
        return 1;
    }
    if (passes > 0) {
        float scratch[EDGEFPTT_PARTITIONS];
        double best = 1e30;
        for (int i = 0; i < passes; ++i) {
            double start = now_s();
            edgefptt_train(edgefptt_samples_x, edgefptt_samples_labels, scratch, threads);
            double took = now_s() - start;
            best = took < best ? took : best;
        }
        printf("pass_s %.9g\n", best);
    }
#endif
    return 0;
}
