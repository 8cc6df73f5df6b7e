/* Portable matmul backend: plain C, no accelerator (the default build).
 *
 * fp32: products accumulate in float, in register blocks of C written with four-float vectors
 * (each lane its own sum; no fused multiply-add), zero entries of A skipped (exact for finite B).
 * bf16: Gemmini's BF16 config, operation by operation: inputs scaled and rounded to bf16,
 * a bf16 accumulator rounded (to nearest even) after every multiply-accumulate in K order. */
#ifndef EDGEFPTT_GEMMINI
#include <string.h>

#include "matmul.h"

#if EDGEFPTT_BF16
static float rne(float v) { return ef_from_bf16(ef_to_bf16(v, 0)); }

void ef_matmul_backend(size_t dim_i, size_t dim_j, size_t dim_k, const ef_elem *a,
                       const ef_elem *b, const ef_elem *d, ef_elem *c, size_t stride_a,
                       size_t stride_b, size_t stride_d, size_t stride_c, float a_scale,
                       bool repeating_bias, bool transpose_a, bool transpose_b)
{
    for (size_t i = 0; i < dim_i; ++i) {
        for (size_t j = 0; j < dim_j; ++j) {
            float acc = 0.0f;
            if (d != NULL)
                acc = ef_from_bf16(repeating_bias ? d[j] : d[i * stride_d + j]);
            for (size_t k = 0; k < dim_k; ++k) {
                float x = ef_from_bf16(transpose_a ? a[k * stride_a + i] : a[i * stride_a + k]);
                float y = ef_from_bf16(transpose_b ? b[j * stride_b + k] : b[k * stride_b + j]);
                if (a_scale != 1.0f)
                    x = rne(x * a_scale);
                acc = rne(acc + x * y); /* a bf16 product is exact in fp32 */
            }
            c[i * stride_c + j] = ef_to_bf16(acc, 0);
        }
    }
}
#else

/* Four-float vectors: GCC/Clang vector extensions where available (SSE2 on x86-64 at -O2,
 * NEON on Arm, plain scalar code where the target has no vector unit), else a struct of four
 * floats. Either way each lane is an IEEE float multiply or add, in the order written (C99
 * mode keeps -ffp-contract=off: no fused multiply-add), so results do not depend on which. */
#if defined(__GNUC__) && !defined(EDGEFPTT_SCALAR_MATMUL)
typedef float v4 __attribute__((vector_size(16)));
static inline v4 v4_splat(float x) { return (v4){x, x, x, x}; }
static inline v4 v4_mac(v4 acc, v4 x, v4 y) { return acc + x * y; }
static inline float v4_lane(v4 v, int l) { return v[l]; }
#else
typedef struct { float f[4]; } v4;
static inline v4 v4_splat(float x) { v4 v = {{x, x, x, x}}; return v; }
static inline v4 v4_mac(v4 acc, v4 x, v4 y)
{
    for (int l = 0; l < 4; ++l)
        acc.f[l] += x.f[l] * y.f[l];
    return acc;
}
static inline float v4_lane(v4 v, int l) { return v.f[l]; }
#endif
static inline v4 v4_load(const float *p) /* unaligned */
{
    v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v4_store(float *p, v4 v) { memcpy(p, &v, sizeof v); }

/* Rows of C per register block, columns (two vectors), and rows of B per cache block. */
enum { MR = 4, NR = 8, KC = 64 };

/* C[i][j] += sum_k A'[i][k] * B[k][j] for one MR x NR block of C kept in registers over kn
 * values of k, with A'[i][k] = a_scale * a[i * a_row + k * a_col]. Products of A' entries that
 * are zero are skipped: they add +-0 (B is finite), and skipping them spares the long runs of
 * zero gradient deep in a long backward pass from the multiplies. */
static void block_mr_nr(size_t kn, const float *a, size_t a_row, size_t a_col, const float *b,
                        size_t ldb, float *c, size_t ldc, float a_scale)
{
    v4 c00 = v4_load(c), c01 = v4_load(c + 4);
    v4 c10 = v4_load(c + ldc), c11 = v4_load(c + ldc + 4);
    v4 c20 = v4_load(c + 2 * ldc), c21 = v4_load(c + 2 * ldc + 4);
    v4 c30 = v4_load(c + 3 * ldc), c31 = v4_load(c + 3 * ldc + 4);
    for (size_t k = 0; k < kn; ++k) {
        const float *ak = a + k * a_col;
        float x0 = ak[0], x1 = ak[a_row], x2 = ak[2 * a_row], x3 = ak[3 * a_row];
        if (x0 == 0.0f && x1 == 0.0f && x2 == 0.0f && x3 == 0.0f)
            continue;
        const float *bk = b + k * ldb;
        v4 b0 = v4_load(bk), b1 = v4_load(bk + 4);
        v4 s = v4_splat(x0 * a_scale);
        c00 = v4_mac(c00, s, b0);
        c01 = v4_mac(c01, s, b1);
        s = v4_splat(x1 * a_scale);
        c10 = v4_mac(c10, s, b0);
        c11 = v4_mac(c11, s, b1);
        s = v4_splat(x2 * a_scale);
        c20 = v4_mac(c20, s, b0);
        c21 = v4_mac(c21, s, b1);
        s = v4_splat(x3 * a_scale);
        c30 = v4_mac(c30, s, b0);
        c31 = v4_mac(c31, s, b1);
    }
    v4_store(c, c00);
    v4_store(c + 4, c01);
    v4_store(c + ldc, c10);
    v4_store(c + ldc + 4, c11);
    v4_store(c + 2 * ldc, c20);
    v4_store(c + 2 * ldc + 4, c21);
    v4_store(c + 3 * ldc, c30);
    v4_store(c + 3 * ldc + 4, c31);
}

/* The same for a rows x cols block at the edge of C (rows <= MR, cols < NR or rows < MR). */
static void block_edge(size_t rows, size_t cols, size_t kn, const float *a, size_t a_row,
                       size_t a_col, const float *b, size_t ldb, float *c, size_t ldc,
                       float a_scale)
{
    for (size_t r = 0; r < rows; ++r)
        for (size_t j = 0; j < cols; ++j) {
            float acc = c[r * ldc + j];
            for (size_t k = 0; k < kn; ++k) {
                float x = a[r * a_row + k * a_col];
                if (x != 0.0f)
                    acc += x * a_scale * b[k * ldb + j];
            }
            c[r * ldc + j] = acc;
        }
}

/* C += A' B, B not transposed: k in blocks of KC rows of B (they stay in L1 while every block
 * of C passes over them), C in MR x NR register blocks. Each C element sums its products in
 * k order. */
static void matmul_nn(size_t dim_i, size_t dim_j, size_t dim_k, const float *a, size_t a_row,
                      size_t a_col, const float *b, size_t ldb, float *c, size_t ldc,
                      float a_scale)
{
    size_t i_main = dim_i - dim_i % MR, j_main = dim_j - dim_j % NR;
    for (size_t k0 = 0; k0 < dim_k; k0 += KC) {
        size_t kn = dim_k - k0 < KC ? dim_k - k0 : KC;
        const float *ak = a + k0 * a_col, *bk = b + k0 * ldb;
        for (size_t i = 0; i < i_main; i += MR) {
            for (size_t j = 0; j < j_main; j += NR)
                block_mr_nr(kn, ak + i * a_row, a_row, a_col, bk + j, ldb, c + i * ldc + j, ldc,
                            a_scale);
            if (j_main < dim_j)
                block_edge(MR, dim_j - j_main, kn, ak + i * a_row, a_row, a_col, bk + j_main,
                           ldb, c + i * ldc + j_main, ldc, a_scale);
        }
        if (i_main < dim_i)
            block_edge(dim_i - i_main, dim_j, kn, ak + i_main * a_row, a_row, a_col, bk, ldb,
                       c + i_main * ldc, ldc, a_scale);
    }
}

/* Horizontal sum of a vector of partial sums plus a scalar tail. */
static inline float hsum(v4 v, float tail)
{
    return ((v4_lane(v, 0) + v4_lane(v, 2)) + (v4_lane(v, 1) + v4_lane(v, 3))) + tail;
}

/* C[i][j] += a_scale * sum_k A[i][k] * B[j][k], B transposed: dot products of contiguous rows,
 * MR rows of A against two rows of B at a time, four partial sums (lanes) per dot product. */
static void matmul_nt(size_t dim_i, size_t dim_j, size_t dim_k, const float *a, size_t lda,
                      const float *b, size_t ldb, float *c, size_t ldc, float a_scale)
{
    size_t k_main = dim_k - dim_k % 4, i_main = dim_i - dim_i % MR, j_main = dim_j - dim_j % 2;
    for (size_t i = 0; i < i_main; i += MR) {
        const float *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        for (size_t j = 0; j < j_main; j += 2) {
            const float *b0 = b + j * ldb, *b1 = b0 + ldb;
            v4 s00 = v4_splat(0.0f), s01 = s00, s10 = s00, s11 = s00;
            v4 s20 = s00, s21 = s00, s30 = s00, s31 = s00;
            for (size_t k = 0; k < k_main; k += 4) {
                v4 y0 = v4_load(b0 + k), y1 = v4_load(b1 + k), x = v4_load(a0 + k);
                s00 = v4_mac(s00, x, y0);
                s01 = v4_mac(s01, x, y1);
                x = v4_load(a1 + k);
                s10 = v4_mac(s10, x, y0);
                s11 = v4_mac(s11, x, y1);
                x = v4_load(a2 + k);
                s20 = v4_mac(s20, x, y0);
                s21 = v4_mac(s21, x, y1);
                x = v4_load(a3 + k);
                s30 = v4_mac(s30, x, y0);
                s31 = v4_mac(s31, x, y1);
            }
            float t[MR][2] = {{0.0f}};
            for (size_t k = k_main; k < dim_k; ++k)
                for (int r = 0; r < MR; ++r) {
                    t[r][0] += a[(i + r) * lda + k] * b0[k];
                    t[r][1] += a[(i + r) * lda + k] * b1[k];
                }
            float *cr = c + i * ldc + j;
            cr[0] += a_scale * hsum(s00, t[0][0]);
            cr[1] += a_scale * hsum(s01, t[0][1]);
            cr[ldc] += a_scale * hsum(s10, t[1][0]);
            cr[ldc + 1] += a_scale * hsum(s11, t[1][1]);
            cr[2 * ldc] += a_scale * hsum(s20, t[2][0]);
            cr[2 * ldc + 1] += a_scale * hsum(s21, t[2][1]);
            cr[3 * ldc] += a_scale * hsum(s30, t[3][0]);
            cr[3 * ldc + 1] += a_scale * hsum(s31, t[3][1]);
        }
    }
    /* Edges: the rows below i_main, and the last column when dim_j is odd. */
    for (size_t i = 0; i < dim_i; ++i)
        for (size_t j = i < i_main ? j_main : 0; j < dim_j; ++j) {
            const float *ai = a + i * lda, *bj = b + j * ldb;
            v4 s = v4_splat(0.0f);
            for (size_t k = 0; k < k_main; k += 4)
                s = v4_mac(s, v4_load(ai + k), v4_load(bj + k));
            float tail = 0.0f;
            for (size_t k = k_main; k < dim_k; ++k)
                tail += ai[k] * bj[k];
            c[i * ldc + j] += a_scale * hsum(s, tail);
        }
}

void ef_matmul_backend(size_t dim_i, size_t dim_j, size_t dim_k, const ef_elem *a,
                       const ef_elem *b, const ef_elem *d, ef_elem *c, size_t stride_a,
                       size_t stride_b, size_t stride_d, size_t stride_c, float a_scale,
                       bool repeating_bias, bool transpose_a, bool transpose_b)
{
    if (d != c) /* start from D (or zero); d == c accumulates into C as it is */
        for (size_t i = 0; i < dim_i; ++i)
            for (size_t j = 0; j < dim_j; ++j)
                c[i * stride_c + j] =
                    d == NULL ? 0.0f : (repeating_bias ? d[j] : d[i * stride_d + j]);
    size_t a_row = transpose_a ? 1 : stride_a, a_col = transpose_a ? stride_a : 1;
    if (!transpose_b) {
        matmul_nn(dim_i, dim_j, dim_k, a, a_row, a_col, b, stride_b, c, stride_c, a_scale);
    } else if (!transpose_a) {
        matmul_nt(dim_i, dim_j, dim_k, a, stride_a, b, stride_b, c, stride_c, a_scale);
    } else { /* not used by the pass: kept for the interface */
        for (size_t i = 0; i < dim_i; ++i)
            for (size_t j = 0; j < dim_j; ++j) {
                float s = 0.0f;
                for (size_t k = 0; k < dim_k; ++k)
                    s += a[k * stride_a + i] * a_scale * b[j * stride_b + k];
                c[i * stride_c + j] += s;
            }
    }
}
#endif
#else
typedef int ef_portable_backend_not_selected;
#endif
