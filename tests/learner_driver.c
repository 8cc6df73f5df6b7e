/* A device-style use of the learner library (tests/test_learner_c.py): the training samples
 * from a sample-file image in memory (as if linked into flash), the test samples from a
 * callback (as a sensor would hand them), the state in a memory region of two slots. Prints
 * one line per epoch: `epoch E train_loss L test_loss L2 test_acc A`. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "learner.h"

static uint8_t train_image[1 << 20];
static uint8_t test_image[1 << 20];
static uint8_t region[1 << 21];

/* The "sensor": samples of another source, handed out one by one in index order. */
static int sensor_read(ef_source *src, uint32_t index, ef_elem *x, size_t stride, int32_t *label)
{
    ef_source *inner = src->user;
    return inner->read(inner, index, x, stride, label);
}

static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap, f) : 0;
    if (f)
        fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    char err[EF_ERR_BYTES];
    if (argc != 4)
        return 2;
    size_t train_n = slurp(argv[1], train_image, sizeof train_image);
    size_t test_n = slurp(argv[2], test_image, sizeof test_image);
    ef_source train, inner, sensor = {0};
    ef_store store;
    if (ef_source_image(&train, train_image, train_n, "train image", err) != EF_OK ||
        ef_source_image(&inner, test_image, test_n, "test image", err) != EF_OK ||
        ef_store_memory(&store, region, sizeof region, "region", err) != EF_OK) {
        printf("error %s\n", err);
        return 2;
    }
    sensor.count = inner.count;
    sensor.read = sensor_read;
    sensor.user = &inner;
    sensor.name = "sensor";
    ef_learn_config cfg = {0.05f, 0, 1.0f, 0, 0};
    ef_learner learner;
    ef_learner_init(&learner, &cfg, 1);
    ef_learner_save(&learner, &store);
    int epochs = atoi(argv[3]);
    for (int e = 0; e < epochs; ++e) {
        ef_epoch_report rep;
        if (e == 1) { /* a "reset" after the first epoch: everything again from the region */
            if (ef_learner_load(&learner, &store, 1) != EF_OK) {
                printf("error %s\n", learner.err);
                return 2;
            }
        }
        if (ef_learner_epoch(&learner, &train, &sensor, &store, &rep) != EF_OK) {
            printf("error %s\n", learner.err);
            return 1;
        }
        printf("epoch %u train_loss %.9g test_loss %.9g test_acc %.9g\n", rep.epoch,
               rep.train_loss, rep.test_loss, rep.test_acc);
    }
    return 0;
}
