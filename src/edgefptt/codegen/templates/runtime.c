/* Runtime of the generated training pass: bf16, harts and barrier, counters, kernels.
 * Each kernel mirrors edgefptt/edge/ops.py operation by operation; ef_r() rounds after every
 * operation in bf16 (and does nothing in fp32), exactly where the golden model rounds. */
#if !EDGEFPTT_BAREMETAL
#define _POSIX_C_SOURCE 200809L
#include <sched.h>
#include <time.h>
#endif
#include <math.h>
#include <string.h>

#include "matmul.h"
#include "runtime.h"

uint64_t ef_group_counts[EF_NUM_GROUPS];
const char *const ef_group_names[EF_NUM_GROUPS] = {
    "MatMul-1", "MatMul-2", "MatMul-3", "Mat2Vec", "EWO-basic", "EWO-combo",
    "EWO-SGD(FPTT)", "Sigmoid", "tanh", "softmax", "dataMovement",
};

/* ------------------------------------------------------------------------------ bf16 */
float ef_from_bf16(uint16_t bits)
{
    uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t ef_to_bf16(float value, int away)
{
    uint32_t u;
    memcpy(&u, &value, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN stays a quiet NaN of the same sign */
        return (uint16_t)((u >> 16) | 0x0040u);
    if (away) /* the seed paper's rounding: add half an ulp, truncate */
        return (uint16_t)((u + 0x8000u) >> 16);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* ------------------------------------------------------------------------------ counters */
uint64_t ef_counter(void)
{
#if EDGEFPTT_RDCYCLE
    uint64_t cycles;
    __asm__ volatile("rdcycle %0" : "=r"(cycles));
    return cycles;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* ------------------------------------------------------------------------------ harts */
static int ef_barrier_arrived;
static int ef_barrier_sense;

void ef_ctx_init(ef_ctx *ctx, int hart, int harts)
{
#if EDGEFPTT_FLUSH_SUBNORMALS && defined(__SSE__) && defined(__GNUC__)
    /* Opt-in (-DEDGEFPTT_FLUSH_SUBNORMALS=1, x86 only): flush subnormal results and inputs to
     * zero (MXCSR FTZ|DAZ) on this hart. Not IEEE: values below 2^-126 become 0. It spares
     * the microcode assists of subnormal arithmetic when gradients vanish over a long backward
     * pass (K = 1, T = 784); see docs/deploy.md. */
    __builtin_ia32_ldmxcsr(__builtin_ia32_stmxcsr() | 0x8040u);
#endif
    ctx->hart = hart;
    ctx->harts = harts;
    ctx->sense = __atomic_load_n(&ef_barrier_sense, __ATOMIC_ACQUIRE);
    ctx->last = ef_counter();
}

/* Sense-reversing barrier on two words: the same code on pthreads and on bare-metal harts. */
void ef_barrier(ef_ctx *ctx)
{
    if (ctx->harts == 1)
        return;
    int sense = !ctx->sense;
    ctx->sense = sense;
    if (__atomic_add_fetch(&ef_barrier_arrived, 1, __ATOMIC_ACQ_REL) == ctx->harts) {
        __atomic_store_n(&ef_barrier_arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&ef_barrier_sense, sense, __ATOMIC_RELEASE);
        return;
    }
    for (unsigned spins = 0; __atomic_load_n(&ef_barrier_sense, __ATOMIC_ACQUIRE) != sense;
         ++spins) {
#if !EDGEFPTT_BAREMETAL
        if (spins > 256) /* more threads than cores: let the others run */
            sched_yield();
#endif
    }
}

/* End of a kernel: wait for every hart, then hart 0 charges the time since the last sync to
 * the kernel's group (barrier waits included, as the seed paper measured). */
void ef_sync(ef_ctx *ctx, int group)
{
    ef_barrier(ctx);
    if (ctx->hart == 0) {
        uint64_t now = ef_counter();
        ef_group_counts[group] += now - ctx->last;
        ctx->last = now;
    }
}

/* The first column of row r that belongs to this hart when elements (r * cols + j) are dealt
 * out cyclically: element e goes to hart e mod harts. */
static int first_col(const ef_ctx *ctx, int r, int cols)
{
    int n = ctx->harts;
    return ((ctx->hart - (int)(((long)r * cols) % n)) % n + n) % n;
}

/* ------------------------------------------------------------------------------ kernels */
void ef_copy(ef_ctx *ctx, int rows, int cols, const ef_elem *src, int ld_src, ef_elem *dst,
             int ld_dst)
{
    if (ctx->hart != 0)
        return;
    for (int r = 0; r < rows; ++r)
        memcpy(dst + (size_t)r * ld_dst, src + (size_t)r * ld_src, (size_t)cols * sizeof *dst);
}

void ef_zero(ef_ctx *ctx, int rows, int cols, ef_elem *dst, int ld)
{
    if (ctx->hart != 0)
        return;
    for (int r = 0; r < rows; ++r)
        memset(dst + (size_t)r * ld, 0, (size_t)cols * sizeof *dst);
}

void ef_matmul(ef_ctx *ctx, int dim_i, int dim_j, int dim_k, const ef_elem *a, const ef_elem *b,
               const ef_elem *d, ef_elem *c, int stride_a, int stride_b, int stride_d,
               int stride_c, float a_scale, bool repeating_bias, bool transpose_a,
               bool transpose_b)
{
    if (ctx->hart != 0) /* one accelerator, attached to hart 0 */
        return;
    ef_matmul_backend((size_t)dim_i, (size_t)dim_j, (size_t)dim_k, a, b, d, c, (size_t)stride_a,
                      (size_t)stride_b, (size_t)stride_d, (size_t)stride_c, a_scale,
                      repeating_bias, transpose_a, transpose_b);
}

static float sigmoid(float z) { return ef_r(1.0f / ef_r(1.0f + ef_r(expf(-z)))); }
static float dsigmoid(float y) { return ef_r(y * ef_r(1.0f - y)); }
static float dtanh(float y) { return ef_r(1.0f - ef_r(y * y)); }

void ef_lstm_cell_forward(ef_ctx *ctx, int rows, int units, const ef_elem *pre, int ld_pre,
                          const ef_elem *c_prev, int ld_c_prev, ef_elem *act, int ld_act,
                          ef_elem *c, int ld_c, ef_elem *h, int ld_h, ef_elem *tanh_c,
                          int ld_tanh_c)
{
    for (int r = 0; r < rows; ++r) {
        const ef_elem *z = pre + (size_t)r * ld_pre;
        ef_elem *a = act + (size_t)r * ld_act; /* may alias z: each unit reads before it writes */
        for (int j = first_col(ctx, r, units); j < units; j += ctx->harts) {
            float i_g = sigmoid(ef_ld(z + j));
            float f_g = sigmoid(ef_ld(z + units + j));
            float g_g = ef_r(tanhf(ef_ld(z + 2 * units + j)));
            float o_g = sigmoid(ef_ld(z + 3 * units + j));
            float c_new = ef_r(ef_r(f_g * ef_ld(c_prev + (size_t)r * ld_c_prev + j)) +
                               ef_r(i_g * g_g));
            float tc = ef_r(tanhf(c_new));
            ef_st(a + j, i_g);
            ef_st(a + units + j, f_g);
            ef_st(a + 2 * units + j, g_g);
            ef_st(a + 3 * units + j, o_g);
            ef_st(c + (size_t)r * ld_c + j, c_new);
            ef_st(h + (size_t)r * ld_h + j, ef_r(o_g * tc));
            if (tanh_c != NULL)
                ef_st(tanh_c + (size_t)r * ld_tanh_c + j, tc);
        }
    }
}

void ef_lstm_gates(ef_ctx *ctx, int rows, int units, ef_elem *gates, int ld)
{
    for (int r = 0; r < rows; ++r) {
        ef_elem *z = gates + (size_t)r * ld;
        for (int e = first_col(ctx, r, 4 * units); e < 4 * units; e += ctx->harts) {
            float v = ef_ld(z + e);
            ef_st(z + e, e / units == 2 ? ef_r(tanhf(v)) : sigmoid(v));
        }
    }
}

void ef_lstm_cell_backward(ef_ctx *ctx, int rows, int units, const ef_elem *dh, int ld_dh,
                           ef_elem *dc, int ld_dc, const ef_elem *act, int ld_act,
                           const ef_elem *c_prev, int ld_c_prev, const ef_elem *tanh_src,
                           int ld_tanh_src, int tanh_stored, ef_elem *dpre, int ld_dpre)
{
    for (int r = 0; r < rows; ++r) {
        const ef_elem *a = act + (size_t)r * ld_act;
        ef_elem *d = dpre + (size_t)r * ld_dpre;
        for (int j = first_col(ctx, r, units); j < units; j += ctx->harts) {
            float i_g = ef_ld(a + j), f_g = ef_ld(a + units + j);
            float g_g = ef_ld(a + 2 * units + j), o_g = ef_ld(a + 3 * units + j);
            float dh_v = ef_ld(dh + (size_t)r * ld_dh + j);
            float src = ef_ld(tanh_src + (size_t)r * ld_tanh_src + j);
            float tc = tanh_stored ? src : ef_r(tanhf(src));
            ef_elem *dc_p = dc + (size_t)r * ld_dc + j;
            float dc_total = ef_r(ef_ld(dc_p) + ef_r(ef_r(dh_v * o_g) * dtanh(tc)));
            float cp = ef_ld(c_prev + (size_t)r * ld_c_prev + j);
            ef_st(d + j, ef_r(ef_r(dc_total * g_g) * dsigmoid(i_g)));
            ef_st(d + units + j, ef_r(ef_r(dc_total * cp) * dsigmoid(f_g)));
            ef_st(d + 2 * units + j, ef_r(ef_r(dc_total * i_g) * dtanh(g_g)));
            ef_st(d + 3 * units + j, ef_r(ef_r(dh_v * tc) * dsigmoid(o_g)));
            ef_st(dc_p, ef_r(dc_total * f_g));
        }
    }
}

/* Stable softmax, dy = probs - onehot and the batch-mean cross-entropy, on hart 0. */
void ef_softmax_xent(ef_ctx *ctx, int rows, int classes, const ef_elem *logits, int ld_logits,
                     const int32_t *labels, ef_elem *dy, int ld_dy, ef_elem *loss)
{
    if (ctx->hart != 0)
        return;
    float total = 0.0f;
    for (int r = 0; r < rows; ++r) {
        const ef_elem *z = logits + (size_t)r * ld_logits;
        ef_elem *g = dy + (size_t)r * ld_dy;
        float top = ef_ld(z);
        for (int j = 1; j < classes; ++j)
            top = ef_ld(z + j) > top ? ef_ld(z + j) : top;
        float sum = 0.0f;
        for (int j = 0; j < classes; ++j) { /* dy holds exp until the sum is known */
            float e = ef_r(expf(ef_r(ef_ld(z + j) - top)));
            ef_st(g + j, e);
            sum = j == 0 ? e : ef_r(sum + e);
        }
        for (int j = 0; j < classes; ++j) {
            float p = ef_r(ef_ld(g + j) / sum);
            ef_st(g + j, j == labels[r] ? ef_r(p - 1.0f) : p);
            if (j == labels[r]) {
                float lp = ef_r(logf(p));
                total = r == 0 ? lp : ef_r(total + lp);
            }
        }
    }
    ef_st(loss, ef_r(total / -(float)rows));
}

void ef_record_loss(ef_ctx *ctx, float *losses, int partition, const ef_elem *loss)
{
    if (ctx->hart == 0 && losses != NULL)
        losses[partition] = ef_ld(loss);
}

/* db += scale * (sum of the rows), column j on hart j mod harts, rows added in order. */
void ef_bias_grad(ef_ctx *ctx, int rows, int cols, const ef_elem *values, int ld,
                  ef_elem *db, float scale)
{
    for (int j = ctx->hart; j < cols; j += ctx->harts) {
        float acc = ef_ld(values + j);
        for (int r = 1; r < rows; ++r)
            acc = ef_r(acc + ef_ld(values + (size_t)r * ld + j));
        ef_st(db + j, ef_r(ef_ld(db + j) + ef_r(acc * scale)));
    }
}

/* The fused FPTT-SGD loop of the seed paper (edgefptt/edge/ops.py fptt_sgd). */
void ef_fptt_sgd(ef_ctx *ctx, int n, ef_elem *w, ef_elem *grad, ef_elem *w_bar, ef_elem *lam,
                 float lr, float alpha, float beta, float beta_over_alpha, float linear_coef)
{
    for (int i = ctx->hart; i < n; i += ctx->harts) {
        float wv = ef_ld(w + i), wb = ef_ld(w_bar + i), lv = ef_ld(lam + i);
        float linear = linear_coef == 1.0f ? lv : ef_r(linear_coef * lv);
        wv = ef_r(wv - ef_r(lr * ef_r(ef_r(ef_ld(grad + i) - linear) + ef_r(alpha * ef_r(wv - wb)))));
        lv = ef_r(lv - ef_r(alpha * ef_r(wv - wb)));
        float mixed = beta == 0.5f ? ef_r(0.5f * ef_r(wb + wv)) : ef_r(wb + ef_r(beta * ef_r(wv - wb)));
        ef_st(w + i, wv);
        ef_st(lam + i, lv);
        ef_st(w_bar + i, ef_r(mixed - ef_r(beta_over_alpha * lv)));
        ef_st(grad + i, 0.0f);
    }
}
