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
#if defined(__riscv_vector)
#include <riscv_vector.h>
#endif

uint64_t ef_group_counts[EF_NUM_GROUPS];
const char *const ef_group_names[EF_NUM_GROUPS] = {
    "MatMul-1", "MatMul-2", "MatMul-3", "Mat2Vec", "EWO-basic", "EWO-combo",
    "EWO-SGD(FPTT)", "Sigmoid", "tanh", "softmax", "dataMovement",
};

/* ------------------------------------------------------------------------------ counters */
uint64_t ef_counter(void)
{
#if EDGEFPTT_RDCYCLE
    uint64_t cycles;
    __asm__ volatile("rdcycle %0" : "=r"(cycles));
    return cycles;
#elif EDGEFPTT_BAREMETAL
    return ef_board_counter(); /* startup.c: mcycle on RISC-V, SysTick cycles on Cortex-M */
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

static inline float sigmoid(float z) { return ef_r(1.0f / ef_r(1.0f + ef_r(EF_EXPF(-z)))); }
static inline float dsigmoid(float y) { return ef_r(y * ef_r(1.0f - y)); }
static inline float dtanh(float y) { return ef_r(1.0f - ef_r(y * y)); }

/* Element-wise kernels work on chunks of EF_CHUNK of this hart's elements: gathered from the
 * arena into float arrays, computed by a loop of fixed length that the compiler vectorizes
 * (ef_expf and ef_tanhf are inline float code), scattered back. The formulas are the
 * element-by-element ones of ops.py; the chunks change nothing but the speed. */
enum { EF_CHUNK = EF_SCALAR_CORE ? 1 : 32 };

/* The elements of this hart among `count` dealt out cyclically from the element `first`
 * of a row: the first, the step between them, and how many. */
typedef struct {
    int first, step, count;
} ef_span;

static ef_span my_span(const ef_ctx *ctx, int first, int count)
{
    ef_span s = {first, ctx->harts, 0};
    if (first < count)
        s.count = (count - first + ctx->harts - 1) / ctx->harts;
    return s;
}

/* Chunk q (a multiple of EF_CHUNK) of a span: how many elements it holds, and the index of
 * its first. */
static inline int chunk_len(ef_span s, int q)
{
    return s.count - q < EF_CHUNK ? s.count - q : EF_CHUNK;
}

static inline size_t chunk_at(ef_span s, int q)
{
    return (size_t)s.first + (size_t)q * s.step;
}

#if defined(__riscv_vector) && !EDGEFPTT_BF16
/* RVV 1.0 (`make riscv_rvv`): the chunk's copies as vector loads and stores (unit-stride, or
 * strided for a hart's every step-th element), vsetvl at a time; the same values as the loops
 * below, which the compiler would otherwise turn into calls of memcpy. */
static inline void gather(float *dst, const ef_elem *src, int step, int n)
{
    ptrdiff_t bytes = (ptrdiff_t)step * (ptrdiff_t)sizeof(float);
    for (size_t l = 0, vl; l < (size_t)n; l += vl) {
        vl = __riscv_vsetvl_e32m8((size_t)n - l);
        vfloat32m8_t v = step == 1 ? __riscv_vle32_v_f32m8(src + l, vl)
                                   : __riscv_vlse32_v_f32m8(src + l * (size_t)step, bytes, vl);
        __riscv_vse32_v_f32m8(dst + l, v, vl);
    }
    for (size_t l = (size_t)n, vl; l < EF_CHUNK; l += vl) {
        vl = __riscv_vsetvl_e32m8(EF_CHUNK - l);
        __riscv_vse32_v_f32m8(dst + l, __riscv_vfmv_v_f_f32m8(0.0f, vl), vl);
    }
}

static inline void scatter(ef_elem *dst, const float *src, int step, int n)
{
    ptrdiff_t bytes = (ptrdiff_t)step * (ptrdiff_t)sizeof(float);
    for (size_t l = 0, vl; l < (size_t)n; l += vl) {
        vl = __riscv_vsetvl_e32m8((size_t)n - l);
        vfloat32m8_t v = __riscv_vle32_v_f32m8(src + l, vl);
        if (step == 1)
            __riscv_vse32_v_f32m8(dst + l, v, vl);
        else
            __riscv_vsse32_v_f32m8(dst + l * (size_t)step, bytes, v, vl);
    }
}
#else
/* dst[l] = src[l * step] for l < n, zeros after (so that the whole chunk is finite). */
static inline void gather(float *dst, const ef_elem *src, int step, int n)
{
    if (step == 1 && n == EF_CHUNK) {
        for (int l = 0; l < EF_CHUNK; ++l)
            dst[l] = ef_ld(src + l);
        return;
    }
    for (int l = 0; l < EF_CHUNK; ++l)
        dst[l] = l < n ? ef_ld(src + (size_t)l * step) : 0.0f;
}

/* dst[l * step] = src[l] for l < n (values already at the storage precision). */
static inline void scatter(ef_elem *dst, const float *src, int step, int n)
{
    if (step == 1 && n == EF_CHUNK) {
        for (int l = 0; l < EF_CHUNK; ++l)
            ef_st(dst + l, src[l]);
        return;
    }
    for (int l = 0; l < n; ++l)
        ef_st(dst + (size_t)l * step, src[l]);
}
#endif

void ef_lstm_cell_forward(ef_ctx *ctx, int rows, int units, const ef_elem *pre, int ld_pre,
                          const ef_elem *c_prev, int ld_c_prev, ef_elem *act, int ld_act,
                          ef_elem *c, int ld_c, ef_elem *h, int ld_h, ef_elem *tanh_c,
                          int ld_tanh_c)
{
    float zi[EF_CHUNK], zf[EF_CHUNK], zg[EF_CHUNK], zo[EF_CHUNK], cp[EF_CHUNK];
    float cn[EF_CHUNK], hn[EF_CHUNK], tc[EF_CHUNK];
    for (int r = 0; r < rows; ++r) {
        const ef_elem *z = pre + (size_t)r * ld_pre;
        ef_elem *a = act + (size_t)r * ld_act; /* may alias z: a chunk is read before written */
        ef_span s = my_span(ctx, first_col(ctx, r, units), units);
        for (int q = 0; q < s.count; q += EF_CHUNK) {
            int n = chunk_len(s, q);
            size_t j = chunk_at(s, q);
            gather(zi, z + j, s.step, n);
            gather(zf, z + units + j, s.step, n);
            gather(zg, z + 2 * units + j, s.step, n);
            gather(zo, z + 3 * units + j, s.step, n);
            gather(cp, c_prev + (size_t)r * ld_c_prev + j, s.step, n);
            for (int l = 0; l < EF_CHUNK; ++l) {
                float i_g = sigmoid(zi[l]), f_g = sigmoid(zf[l]);
                float g_g = ef_r(EF_TANHF(zg[l])), o_g = sigmoid(zo[l]);
                float c_new = ef_r(ef_r(f_g * cp[l]) + ef_r(i_g * g_g));
                float t = ef_r(EF_TANHF(c_new));
                zi[l] = i_g, zf[l] = f_g, zg[l] = g_g, zo[l] = o_g;
                cn[l] = c_new, tc[l] = t, hn[l] = ef_r(o_g * t);
            }
            scatter(a + j, zi, s.step, n);
            scatter(a + units + j, zf, s.step, n);
            scatter(a + 2 * units + j, zg, s.step, n);
            scatter(a + 3 * units + j, zo, s.step, n);
            scatter(c + (size_t)r * ld_c + j, cn, s.step, n);
            scatter(h + (size_t)r * ld_h + j, hn, s.step, n);
            if (tanh_c != NULL)
                scatter(tanh_c + (size_t)r * ld_tanh_c + j, tc, s.step, n);
        }
    }
}

void ef_lstm_gates(ef_ctx *ctx, int rows, int units, ef_elem *gates, int ld)
{
    float v[EF_CHUNK];
    for (int r = 0; r < rows; ++r) {
        ef_elem *z = gates + (size_t)r * ld;
        ef_span s = my_span(ctx, first_col(ctx, r, 4 * units), 4 * units);
        for (int q = 0; q < s.count; q += EF_CHUNK) {
            int n = chunk_len(s, q);
            size_t e = chunk_at(s, q);
            gather(v, z + e, s.step, n);
            for (int l = 0; l < EF_CHUNK; ++l) {
                float sg = sigmoid(v[l]), th = ef_r(EF_TANHF(v[l]));
                v[l] = (e + (size_t)l * s.step) / (size_t)units == 2 ? th : sg;
            }
            scatter(z + e, v, s.step, n);
        }
    }
}

void ef_lstm_cell_backward(ef_ctx *ctx, int rows, int units, const ef_elem *dh, int ld_dh,
                           ef_elem *dc, int ld_dc, const ef_elem *act, int ld_act,
                           const ef_elem *c_prev, int ld_c_prev, const ef_elem *tanh_src,
                           int ld_tanh_src, int tanh_stored, ef_elem *dpre, int ld_dpre)
{
    float gi[EF_CHUNK], gf[EF_CHUNK], gg[EF_CHUNK], go[EF_CHUNK], dhv[EF_CHUNK];
    float src[EF_CHUNK], dcv[EF_CHUNK], cp[EF_CHUNK];
    for (int r = 0; r < rows; ++r) {
        const ef_elem *a = act + (size_t)r * ld_act;
        ef_elem *d = dpre + (size_t)r * ld_dpre;
        ef_elem *dc_r = dc + (size_t)r * ld_dc;
        ef_span s = my_span(ctx, first_col(ctx, r, units), units);
        for (int q = 0; q < s.count; q += EF_CHUNK) {
            int n = chunk_len(s, q);
            size_t j = chunk_at(s, q);
            gather(gi, a + j, s.step, n);
            gather(gf, a + units + j, s.step, n);
            gather(gg, a + 2 * units + j, s.step, n);
            gather(go, a + 3 * units + j, s.step, n);
            gather(dhv, dh + (size_t)r * ld_dh + j, s.step, n);
            gather(src, tanh_src + (size_t)r * ld_tanh_src + j, s.step, n);
            gather(dcv, dc_r + j, s.step, n);
            gather(cp, c_prev + (size_t)r * ld_c_prev + j, s.step, n);
            for (int l = 0; l < EF_CHUNK; ++l) {
                float i_g = gi[l], f_g = gf[l], g_g = gg[l], o_g = go[l], dh_v = dhv[l];
                float tc = tanh_stored ? src[l] : ef_r(EF_TANHF(src[l]));
                float dc_total = ef_r(dcv[l] + ef_r(ef_r(dh_v * o_g) * dtanh(tc)));
                gi[l] = ef_r(ef_r(dc_total * g_g) * dsigmoid(i_g));
                gf[l] = ef_r(ef_r(dc_total * cp[l]) * dsigmoid(f_g));
                gg[l] = ef_r(ef_r(dc_total * i_g) * dtanh(g_g));
                go[l] = ef_r(ef_r(dh_v * tc) * dsigmoid(o_g));
                dcv[l] = ef_r(dc_total * f_g);
            }
            scatter(d + j, gi, s.step, n);
            scatter(d + units + j, gf, s.step, n);
            scatter(d + 2 * units + j, gg, s.step, n);
            scatter(d + 3 * units + j, go, s.step, n);
            scatter(dc_r + j, dcv, s.step, n);
        }
    }
}

/* GRU (torch's equations, gates r, z, n): the pre-activation block of a row is
 * r_pre | z_pre | W_in x + b_in | hn = W_hn h + b_hn, each `units` wide. The forward writes
 * r | z | n | hn in its place (hn unchanged) and h = n + z * (h_prev - n). */
void ef_gru_cell_forward(ef_ctx *ctx, int rows, int units, const ef_elem *pre, int ld_pre,
                         const ef_elem *h_prev, int ld_h_prev, ef_elem *act, int ld_act,
                         ef_elem *h, int ld_h)
{
    float zr[EF_CHUNK], zz[EF_CHUNK], nx[EF_CHUNK], hn[EF_CHUNK], hp[EF_CHUNK], hv[EF_CHUNK];
    for (int r = 0; r < rows; ++r) {
        const ef_elem *z = pre + (size_t)r * ld_pre;
        ef_elem *a = act + (size_t)r * ld_act; /* may alias z: a chunk is read before written */
        ef_span s = my_span(ctx, first_col(ctx, r, units), units);
        for (int q = 0; q < s.count; q += EF_CHUNK) {
            int n = chunk_len(s, q);
            size_t j = chunk_at(s, q);
            gather(zr, z + j, s.step, n);
            gather(zz, z + units + j, s.step, n);
            gather(nx, z + 2 * units + j, s.step, n);
            gather(hn, z + 3 * units + j, s.step, n);
            gather(hp, h_prev + (size_t)r * ld_h_prev + j, s.step, n);
            for (int l = 0; l < EF_CHUNK; ++l) {
                float r_g = sigmoid(zr[l]), z_g = sigmoid(zz[l]);
                float n_g = ef_r(EF_TANHF(ef_r(nx[l] + ef_r(r_g * hn[l]))));
                zr[l] = r_g, zz[l] = z_g, nx[l] = n_g;
                hv[l] = ef_r(n_g + ef_r(z_g * ef_r(hp[l] - n_g)));
            }
            scatter(a + j, zr, s.step, n);
            scatter(a + units + j, zz, s.step, n);
            scatter(a + 2 * units + j, nx, s.step, n);
            scatter(a + 3 * units + j, hn, s.step, n);
            scatter(h + (size_t)r * ld_h + j, hv, s.step, n);
        }
    }
}

/* The gate activations of a stored pre-activation block, in place (recomputation). */
void ef_gru_gates(ef_ctx *ctx, int rows, int units, ef_elem *gates, int ld)
{
    float zr[EF_CHUNK], zz[EF_CHUNK], nx[EF_CHUNK], hn[EF_CHUNK];
    for (int r = 0; r < rows; ++r) {
        ef_elem *z = gates + (size_t)r * ld;
        ef_span s = my_span(ctx, first_col(ctx, r, units), units);
        for (int q = 0; q < s.count; q += EF_CHUNK) {
            int n = chunk_len(s, q);
            size_t j = chunk_at(s, q);
            gather(zr, z + j, s.step, n);
            gather(zz, z + units + j, s.step, n);
            gather(nx, z + 2 * units + j, s.step, n);
            gather(hn, z + 3 * units + j, s.step, n);
            for (int l = 0; l < EF_CHUNK; ++l) {
                float r_g = sigmoid(zr[l]);
                zz[l] = sigmoid(zz[l]);
                nx[l] = ef_r(EF_TANHF(ef_r(nx[l] + ef_r(r_g * hn[l]))));
                zr[l] = r_g;
            }
            scatter(z + j, zr, s.step, n);
            scatter(z + units + j, zz, s.step, n);
            scatter(z + 2 * units + j, nx, s.step, n);
        }
    }
}

/* dpre = dr | dz | dn | dhn (pre-activation gradients) and dh_out = dh * z, the direct part of
 * the gradient of h_prev (dh_out may alias dh). */
void ef_gru_cell_backward(ef_ctx *ctx, int rows, int units, const ef_elem *dh, int ld_dh,
                          const ef_elem *act, int ld_act, const ef_elem *h_prev, int ld_h_prev,
                          ef_elem *dpre, int ld_dpre, ef_elem *dh_out, int ld_dh_out)
{
    float gr[EF_CHUNK], gz[EF_CHUNK], gn[EF_CHUNK], ghn[EF_CHUNK], dhv[EF_CHUNK], hp[EF_CHUNK];
    for (int r = 0; r < rows; ++r) {
        const ef_elem *a = act + (size_t)r * ld_act;
        ef_elem *d = dpre + (size_t)r * ld_dpre;
        ef_span s = my_span(ctx, first_col(ctx, r, units), units);
        for (int q = 0; q < s.count; q += EF_CHUNK) {
            int n = chunk_len(s, q);
            size_t j = chunk_at(s, q);
            gather(gr, a + j, s.step, n);
            gather(gz, a + units + j, s.step, n);
            gather(gn, a + 2 * units + j, s.step, n);
            gather(ghn, a + 3 * units + j, s.step, n);
            gather(dhv, dh + (size_t)r * ld_dh + j, s.step, n);
            gather(hp, h_prev + (size_t)r * ld_h_prev + j, s.step, n);
            for (int l = 0; l < EF_CHUNK; ++l) {
                float r_g = gr[l], z_g = gz[l], n_g = gn[l], dh_v = dhv[l];
                float d_n = ef_r(ef_r(dh_v * ef_r(1.0f - z_g)) * dtanh(n_g));
                gr[l] = ef_r(ef_r(d_n * ghn[l]) * dsigmoid(r_g));
                gz[l] = ef_r(ef_r(dh_v * ef_r(hp[l] - n_g)) * dsigmoid(z_g));
                gn[l] = d_n;
                ghn[l] = ef_r(d_n * r_g);
                dhv[l] = ef_r(dh_v * z_g);
            }
            scatter(d + j, gr, s.step, n);
            scatter(d + units + j, gz, s.step, n);
            scatter(d + 2 * units + j, gn, s.step, n);
            scatter(d + 3 * units + j, ghn, s.step, n);
            scatter(dh_out + (size_t)r * ld_dh_out + j, dhv, s.step, n);
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

/* preds[r] = the column of row r's largest value (the first on ties): the predicted class. */
void ef_record_argmax(ef_ctx *ctx, int32_t *preds, int rows, int cols, const ef_elem *logits,
                      int ld)
{
    if (ctx->hart != 0 || preds == NULL)
        return;
    for (int r = 0; r < rows; ++r) {
        int best = 0;
        for (int j = 1; j < cols; ++j)
            if (ef_ld(logits + (size_t)r * ld + j) > ef_ld(logits + (size_t)r * ld + best))
                best = j;
        preds[r] = best;
    }
}

/* db += scale * (sum of the rows), column j on hart j mod harts, rows added in order (a chunk
 * of this hart's columns at a time, row after row, so that the rows are read along). */
void ef_bias_grad(ef_ctx *ctx, int rows, int cols, const ef_elem *values, int ld,
                  ef_elem *db, float scale)
{
    float acc[EF_CHUNK], v[EF_CHUNK];
    ef_span s = my_span(ctx, ctx->hart, cols);
    for (int q = 0; q < s.count; q += EF_CHUNK) {
        int n = chunk_len(s, q);
        size_t j = chunk_at(s, q);
        gather(acc, values + j, s.step, n);
        for (int r = 1; r < rows; ++r) {
            gather(v, values + (size_t)r * ld + j, s.step, n);
            for (int l = 0; l < EF_CHUNK; ++l)
                acc[l] = ef_r(acc[l] + v[l]);
        }
        gather(v, db + j, s.step, n);
        for (int l = 0; l < EF_CHUNK; ++l)
            v[l] = ef_r(v[l] + ef_r(acc[l] * scale));
        scatter(db + j, v, s.step, n);
    }
}

/* The fused FPTT-SGD step of one parameter (edgefptt/edge/ops.py fptt_sgd): w, lambda and
 * W_bar updated in place from the gradient g. */
#if defined(__GNUC__)
#define EF_FPTT_INLINE inline __attribute__((always_inline))
#else
#define EF_FPTT_INLINE inline
#endif
static EF_FPTT_INLINE void fptt_one(float *w, float *wb, float *lv, float g, float lr,
                                    float alpha, float beta, float beta_over_alpha,
                                    float linear_coef)
{
    float linear = linear_coef == 1.0f ? *lv : ef_ra(linear_coef * *lv);
    float w_new = ef_ra(*w - ef_ra(lr * ef_ra(ef_ra(g - linear) + ef_ra(alpha * ef_ra(*w - *wb)))));
    float l_new = ef_ra(*lv - ef_ra(alpha * ef_ra(w_new - *wb)));
    float mixed = beta == 0.5f ? ef_ra(0.5f * ef_ra(*wb + w_new))
                               : ef_ra(*wb + ef_ra(beta * ef_ra(w_new - *wb)));
    *w = w_new;
    *lv = l_new;
    *wb = ef_ra(mixed - ef_ra(beta_over_alpha * l_new));
}

#if EF_SCALAR_CORE
/* Without a vector unit: one pass over this hart's parameters (every hart-th), each of the four
 * arrays read and written once per parameter, the gradient left zero for the next partition. */
void ef_fptt_sgd(ef_ctx *ctx, int n_params, ef_elem *w, ef_elem *grad, ef_elem *w_bar,
                 ef_elem *lam, float lr, float alpha, float beta, float beta_over_alpha,
                 float linear_coef)
{
    size_t step = (size_t)ctx->harts;
    if (step == 1 && linear_coef == 1.0f && beta == 0.5f) { /* the usual case, specialized */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
        for (size_t i = 0; i < (size_t)n_params; ++i) {
            float wv = ef_ld(w + i), wb = ef_ld(w_bar + i), lv = ef_ld(lam + i);
            fptt_one(&wv, &wb, &lv, ef_ld(grad + i), lr, alpha, 0.5f, beta_over_alpha, 1.0f);
            ef_st_ra(w + i, wv);
            ef_st_ra(lam + i, lv);
            ef_st_ra(w_bar + i, wb);
            ef_st(grad + i, 0.0f);
        }
        return;
    }
    for (size_t i = (size_t)ctx->hart; i < (size_t)n_params; i += step) {
        float wv = ef_ld(w + i), wb = ef_ld(w_bar + i), lv = ef_ld(lam + i);
        fptt_one(&wv, &wb, &lv, ef_ld(grad + i), lr, alpha, beta, beta_over_alpha, linear_coef);
        ef_st_ra(w + i, wv);
        ef_st_ra(lam + i, lv);
        ef_st_ra(w_bar + i, wb);
        ef_st(grad + i, 0.0f);
    }
}
#elif defined(__riscv_vector) && !EDGEFPTT_BF16
/* RVV 1.0 (`make riscv_rvv`): one pass over a contiguous share of the parameters per hart (the
 * update is parameter by parameter: which hart does one changes nothing), each of the four
 * arrays streamed once, the loop vectorized by the compiler (vector-length agnostic); the
 * arrays are distinct regions of the arena (restrict). */
static void fptt_range(size_t n, float *restrict w, float *restrict grad, float *restrict w_bar,
                       float *restrict lam, float lr, float alpha, float beta,
                       float beta_over_alpha, float linear_coef)
{
    for (size_t i = 0; i < n; ++i) {
        float wv = w[i], wb = w_bar[i], lv = lam[i];
        fptt_one(&wv, &wb, &lv, grad[i], lr, alpha, beta, beta_over_alpha, linear_coef);
        w[i] = wv;
        lam[i] = lv;
        w_bar[i] = wb;
        grad[i] = 0.0f;
    }
}

void ef_fptt_sgd(ef_ctx *ctx, int n_params, ef_elem *w, ef_elem *grad, ef_elem *w_bar,
                 ef_elem *lam, float lr, float alpha, float beta, float beta_over_alpha,
                 float linear_coef)
{
    size_t n = (size_t)n_params, harts = (size_t)ctx->harts, hart = (size_t)ctx->hart;
    size_t lo = n * hart / harts, hi = n * (hart + 1) / harts;
    if (linear_coef == 1.0f && beta == 0.5f) /* the usual case, specialized */
        fptt_range(hi - lo, w + lo, grad + lo, w_bar + lo, lam + lo, lr, alpha, 0.5f,
                   beta_over_alpha, 1.0f);
    else
        fptt_range(hi - lo, w + lo, grad + lo, w_bar + lo, lam + lo, lr, alpha, beta,
                   beta_over_alpha, linear_coef);
}
#else
/* With a vector unit: on chunks of this hart's parameters (the loop over a chunk vectorizes). */
void ef_fptt_sgd(ef_ctx *ctx, int n_params, ef_elem *w, ef_elem *grad, ef_elem *w_bar,
                 ef_elem *lam, float lr, float alpha, float beta, float beta_over_alpha,
                 float linear_coef)
{
    float wv[EF_CHUNK], wb[EF_CHUNK], lv[EF_CHUNK], gv[EF_CHUNK];
    const float zeros[EF_CHUNK] = {0.0f};
    ef_span s = my_span(ctx, ctx->hart, n_params);
    for (int q = 0; q < s.count; q += EF_CHUNK) {
        int n = chunk_len(s, q);
        size_t i = chunk_at(s, q);
        gather(wv, w + i, s.step, n);
        gather(wb, w_bar + i, s.step, n);
        gather(lv, lam + i, s.step, n);
        gather(gv, grad + i, s.step, n);
        for (int l = 0; l < EF_CHUNK; ++l)
            fptt_one(wv + l, wb + l, lv + l, gv[l], lr, alpha, beta, beta_over_alpha,
                     linear_coef);
        scatter(w + i, wv, s.step, n);
        scatter(lam + i, lv, s.step, n);
        scatter(w_bar + i, wb, s.step, n);
        scatter(grad + i, zeros, s.step, n);
    }
}
#endif

/* ------------------------------------------------------- the seed paper's schedule's kernels
 * Each is element-wise over a rows x cols block (a chunk of this hart's elements of a row at a
 * time, as above) or, for the softmax and the loss, runs on hart 0. Outputs may alias inputs
 * element for element (the paper's dc = dc * f): a chunk is read whole before it is written. */
#define EF_ROWS_BEGIN(cols)                                                                  \
    for (int r = 0; r < rows; ++r) {                                                         \
        ef_span s = my_span(ctx, first_col(ctx, r, (cols)), (cols));                         \
        for (int q = 0; q < s.count; q += EF_CHUNK) {                                        \
            int n = chunk_len(s, q);                                                         \
            size_t j = chunk_at(s, q);
#define EF_ROWS_END \
    }               \
    }
#define EF_AT(p, ld) ((p) + (size_t)r * (ld) + j)

void ef_sigmoid(ef_ctx *ctx, int rows, int cols, const ef_elem *src, int ld_src, ef_elem *dst,
                int ld_dst)
{
    float v[EF_CHUNK];
    EF_ROWS_BEGIN(cols)
    gather(v, EF_AT(src, ld_src), s.step, n);
    for (int l = 0; l < EF_CHUNK; ++l)
        v[l] = sigmoid(v[l]);
    scatter(EF_AT(dst, ld_dst), v, s.step, n);
    EF_ROWS_END
}

void ef_tanh(ef_ctx *ctx, int rows, int cols, const ef_elem *src, int ld_src, ef_elem *dst,
             int ld_dst)
{
    float v[EF_CHUNK];
    EF_ROWS_BEGIN(cols)
    gather(v, EF_AT(src, ld_src), s.step, n);
    for (int l = 0; l < EF_CHUNK; ++l)
        v[l] = ef_r(EF_TANHF(v[l]));
    scatter(EF_AT(dst, ld_dst), v, s.step, n);
    EF_ROWS_END
}

void ef_mul(ef_ctx *ctx, int rows, int cols, const ef_elem *a, int ld_a, const ef_elem *b,
            int ld_b, ef_elem *out, int ld_out)
{
    float u[EF_CHUNK], v[EF_CHUNK];
    EF_ROWS_BEGIN(cols)
    gather(u, EF_AT(a, ld_a), s.step, n);
    gather(v, EF_AT(b, ld_b), s.step, n);
    for (int l = 0; l < EF_CHUNK; ++l)
        u[l] = ef_r(u[l] * v[l]);
    scatter(EF_AT(out, ld_out), u, s.step, n);
    EF_ROWS_END
}

/* out = a + b (a lower layer's dh: its own part plus the layer above's dx) */
void ef_add(ef_ctx *ctx, int rows, int cols, const ef_elem *a, int ld_a, const ef_elem *b,
            int ld_b, ef_elem *out, int ld_out)
{
    float u[EF_CHUNK], v[EF_CHUNK];
    EF_ROWS_BEGIN(cols)
    gather(u, EF_AT(a, ld_a), s.step, n);
    gather(v, EF_AT(b, ld_b), s.step, n);
    for (int l = 0; l < EF_CHUNK; ++l)
        u[l] = ef_r(u[l] + v[l]);
    scatter(EF_AT(out, ld_out), u, s.step, n);
    EF_ROWS_END
}

/* c = f * c_prev + i * g */
void ef_cell_state(ef_ctx *ctx, int rows, int cols, const ef_elem *f, int ld_f,
                   const ef_elem *c_prev, int ld_c_prev, const ef_elem *i, int ld_i,
                   const ef_elem *g, int ld_g, ef_elem *c, int ld_c)
{
    float fv[EF_CHUNK], cv[EF_CHUNK], iv[EF_CHUNK], gv[EF_CHUNK];
    EF_ROWS_BEGIN(cols)
    gather(fv, EF_AT(f, ld_f), s.step, n);
    gather(cv, EF_AT(c_prev, ld_c_prev), s.step, n);
    gather(iv, EF_AT(i, ld_i), s.step, n);
    gather(gv, EF_AT(g, ld_g), s.step, n);
    for (int l = 0; l < EF_CHUNK; ++l)
        cv[l] = ef_r(ef_r(fv[l] * cv[l]) + ef_r(iv[l] * gv[l]));
    scatter(EF_AT(c, ld_c), cv, s.step, n);
    EF_ROWS_END
}

/* Stable softmax of each row, on hart 0: exp(z - max) / their sum, the sum taken in order. */
void ef_softmax(ef_ctx *ctx, int rows, int classes, const ef_elem *logits, int ld_logits,
                ef_elem *probs, int ld_probs)
{
    if (ctx->hart != 0)
        return;
    for (int r = 0; r < rows; ++r) {
        const ef_elem *z = logits + (size_t)r * ld_logits;
        ef_elem *p = probs + (size_t)r * ld_probs;
        float top = ef_ld(z);
        for (int j = 1; j < classes; ++j)
            top = ef_ld(z + j) > top ? ef_ld(z + j) : top;
        float sum = 0.0f;
        for (int j = 0; j < classes; ++j) { /* p holds exp until the sum is known */
            float e = ef_r(expf(ef_r(ef_ld(z + j) - top)));
            ef_st(p + j, e);
            sum = j == 0 ? e : ef_r(sum + e);
        }
        for (int j = 0; j < classes; ++j)
            ef_st(p + j, ef_r(ef_ld(p + j) / sum));
    }
}

/* dy = probs - onehot(labels); loss = -(sum over the batch of log probs[label]) / rows. */
void ef_xent_grad(ef_ctx *ctx, int rows, int classes, const ef_elem *probs, int ld_probs,
                  const int32_t *labels, ef_elem *dy, int ld_dy, ef_elem *loss)
{
    if (ctx->hart != 0)
        return;
    float total = 0.0f;
    for (int r = 0; r < rows; ++r) {
        const ef_elem *p = probs + (size_t)r * ld_probs;
        ef_elem *g = dy + (size_t)r * ld_dy;
        for (int j = 0; j < classes; ++j)
            ef_st(g + j, j == labels[r] ? ef_r(ef_ld(p + j) - 1.0f) : ef_ld(p + j));
        float lp = ef_r(logf(ef_ld(p + labels[r])));
        total = r == 0 ? lp : ef_r(total + lp);
    }
    ef_st(loss, ef_r(total / -(float)rows));
}

/* The paper's output-gate step: dc rebuilt from dh, do = dh * tanh(c), do_in = do * sigma'. */
void ef_lstm_grad_output(ef_ctx *ctx, int rows, int units, const ef_elem *dh, int ld_dh,
                         const ef_elem *o, int ld_o, const ef_elem *tanh_c, int ld_tanh_c,
                         ef_elem *dc, int ld_dc, ef_elem *d_o, int ld_d_o, ef_elem *do_in,
                         int ld_do_in)
{
    float dhv[EF_CHUNK], ov[EF_CHUNK], tv[EF_CHUNK], dcv[EF_CHUNK];
    EF_ROWS_BEGIN(units)
    gather(dhv, EF_AT(dh, ld_dh), s.step, n);
    gather(ov, EF_AT(o, ld_o), s.step, n);
    gather(tv, EF_AT(tanh_c, ld_tanh_c), s.step, n);
    for (int l = 0; l < EF_CHUNK; ++l) {
        float dov = ef_r(dhv[l] * tv[l]);
        dcv[l] = ef_r(ef_r(dhv[l] * ov[l]) * dtanh(tv[l]));
        tv[l] = dov;
        dhv[l] = ef_r(dov * dsigmoid(ov[l]));
    }
    scatter(EF_AT(dc, ld_dc), dcv, s.step, n);
    scatter(EF_AT(d_o, ld_d_o), tv, s.step, n);
    scatter(EF_AT(do_in, ld_do_in), dhv, s.step, n);
    EF_ROWS_END
}

/* The paper's input, forget and cell gate step: di = dc * g, df = dc * c_prev, dg = dc * i and
 * [di * sigma'(i) | df * sigma'(f) | dg * tanh'(g)] into d_in (three blocks of `units`). */
void ef_lstm_grad_gates(ef_ctx *ctx, int rows, int units, const ef_elem *dc, int ld_dc,
                        const ef_elem *i, int ld_i, const ef_elem *f, int ld_f, const ef_elem *g,
                        int ld_g, const ef_elem *c_prev, int ld_c_prev, ef_elem *di, int ld_di,
                        ef_elem *df, int ld_df, ef_elem *dg, int ld_dg, ef_elem *d_in,
                        int ld_d_in)
{
    float dcv[EF_CHUNK], iv[EF_CHUNK], fv[EF_CHUNK], gv[EF_CHUNK], cp[EF_CHUNK];
    float a[EF_CHUNK], b[EF_CHUNK], c[EF_CHUNK];
    EF_ROWS_BEGIN(units)
    gather(dcv, EF_AT(dc, ld_dc), s.step, n);
    gather(iv, EF_AT(i, ld_i), s.step, n);
    gather(fv, EF_AT(f, ld_f), s.step, n);
    gather(gv, EF_AT(g, ld_g), s.step, n);
    gather(cp, EF_AT(c_prev, ld_c_prev), s.step, n);
    for (int l = 0; l < EF_CHUNK; ++l) {
        a[l] = ef_r(dcv[l] * gv[l]);
        b[l] = ef_r(dcv[l] * cp[l]);
        c[l] = ef_r(dcv[l] * iv[l]);
    }
    scatter(EF_AT(di, ld_di), a, s.step, n);
    scatter(EF_AT(df, ld_df), b, s.step, n);
    scatter(EF_AT(dg, ld_dg), c, s.step, n);
    for (int l = 0; l < EF_CHUNK; ++l) {
        a[l] = ef_r(a[l] * dsigmoid(iv[l]));
        b[l] = ef_r(b[l] * dsigmoid(fv[l]));
        c[l] = ef_r(c[l] * dtanh(gv[l]));
    }
    scatter(EF_AT(d_in, ld_d_in), a, s.step, n);
    scatter(EF_AT(d_in, ld_d_in) + units, b, s.step, n);
    scatter(EF_AT(d_in, ld_d_in) + 2 * (size_t)units, c, s.step, n);
    EF_ROWS_END
}
