/* Public API of the generated on-device FPTT training routine. */
#ifndef EDGEFPTT_H
#define EDGEFPTT_H

#include <stdint.h>

#include "runtime.h"

/* Parameters in the edge layout: W (4H, I+H) over [x_t, h_{t-1}], gates i, f, g, o;
 * b (4H); W_y (C, H); b_y (C). */
enum { EDGEFPTT_W, EDGEFPTT_B, EDGEFPTT_W_Y, EDGEFPTT_B_Y, EDGEFPTT_NUM_PARAMS };

/* The arena, laid out by the memory planner; nothing else of size is allocated. */
extern ef_elem edgefptt_arena[EDGEFPTT_ARENA_ELEMENTS];

/* The embedded batch: inputs time-major (T, B, I) in the storage type, labels (B). */
extern const ef_elem edgefptt_samples_x[EDGEFPTT_SEQ_LEN * EDGEFPTT_BATCH_SIZE *
                                        EDGEFPTT_INPUT_SIZE];
extern const int32_t edgefptt_samples_labels[EDGEFPTT_BATCH_SIZE];

/* Load the embedded initial parameters; W_bar = W, lambda = 0, gradients = 0. */
void edgefptt_init(void);

/* One training pass over a batch: K partitions of forward, backward and FPTT-SGD update,
 * starting from h = c = 0. Writes each partition's loss to losses[0..K-1] and returns K.
 * Runs on `threads` threads (pthreads; on bare metal on the EDGEFPTT_HARTS harts, whatever
 * `threads` says). Group counters restart. */
int edgefptt_train(const ef_elem *x, const int32_t *labels, float *losses, int threads);

/* The forward pass over all T steps with the current parameters; logits (B, C) as float. */
void edgefptt_infer(const ef_elem *x, float *logits, int threads);

/* Bare-metal entry: every hart 0..harts-1 calls this with the same arguments. */
void edgefptt_train_hart(int hart, int harts, const ef_elem *x, const int32_t *labels,
                         float *losses);
void edgefptt_infer_hart(int hart, int harts, const ef_elem *x, float *logits);

#if EDGEFPTT_BAREMETAL
/* Bare metal: harts 1..EDGEFPTT_HARTS-1 call this once memory is initialised (startup.c does)
 * and never return: they wait for the passes hart 0 starts with edgefptt_train, _infer and
 * _evaluate, and run their share of each. */
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void edgefptt_worker(int hart);
#endif

/* Evaluation with the FPTT running average W_bar (what the host evaluates): logits (B, C). */
void edgefptt_evaluate(const ef_elem *x, float *logits, int threads);
void edgefptt_evaluate_hart(int hart, int harts, const ef_elem *x, float *logits);

/* Number of elements of parameter `which`, and element i widened to float. */
int edgefptt_param_size(int which);
float edgefptt_param_value(int which, int i);

/* The arena buffers of parameter `which`: W, its running average W_bar, and lambda (what the
 * learner saves and restores). */
ef_elem *edgefptt_param_buffer(int which);
ef_elem *edgefptt_bar_buffer(int which);
ef_elem *edgefptt_lam_buffer(int which);

/* The learning rate of the next training pass (edgefptt_init sets the exported run's value). */
extern float edgefptt_lr;
/* After a training pass: each sample's predicted class from the last partition's logits (before
 * that partition's update). */
extern int32_t edgefptt_train_preds[EDGEFPTT_BATCH_SIZE];

#endif
