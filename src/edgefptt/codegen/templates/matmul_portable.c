/* Portable matmul backend: plain C, no accelerator (the default build).
 *
 * fp32: products accumulate in float; the loops are blocked so that a compiler vectorises
 * them without reassociating any sum (each lane is its own partial sum).
 * bf16: Gemmini's BF16 config, operation by operation: inputs scaled and rounded to bf16,
 * a bf16 accumulator rounded (to nearest even) after every multiply-accumulate in K order. */
#ifndef EDGEFPTT_GEMMINI
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

enum { LANES = 8, ROWS = 4, COLS = 32, K_CHUNK = 256 };

/* C[i][j] += sum_k A[i][k] * B[j][k]: dot products of contiguous rows, ROWS rows of A at a
 * time against one row of B, LANES partial sums each. */
static void dot_rows(size_t dim_i, size_t dim_j, size_t dim_k, const float *a, size_t lda,
                     const float *b, size_t ldb, float *c, size_t ldc)
{
    size_t k_main = dim_k - dim_k % LANES;
    size_t i0 = 0;
    for (; i0 + ROWS <= dim_i; i0 += ROWS) {
        for (size_t j = 0; j < dim_j; ++j) {
            const float *bj = b + j * ldb;
            float part[ROWS][LANES] = {{0.0f}};
            for (size_t k = 0; k < k_main; k += LANES)
                for (int r = 0; r < ROWS; ++r)
                    for (int l = 0; l < LANES; ++l)
                        part[r][l] += a[(i0 + r) * lda + k + l] * bj[k + l];
            for (int r = 0; r < ROWS; ++r) {
                float s = 0.0f;
                for (int l = 0; l < LANES; ++l)
                    s += part[r][l];
                for (size_t k = k_main; k < dim_k; ++k)
                    s += a[(i0 + r) * lda + k] * bj[k];
                c[(i0 + r) * ldc + j] += s;
            }
        }
    }
    for (; i0 < dim_i; ++i0)
        for (size_t j = 0; j < dim_j; ++j) {
            float s = 0.0f;
            for (size_t k = 0; k < dim_k; ++k)
                s += a[i0 * lda + k] * b[j * ldb + k];
            c[i0 * ldc + j] += s;
        }
}

/* C[i][j] += sum_k A'[i][k] * B[k][j] with A'[i][k] = A[k][i] (transposed) or A[i][k]: a
 * ROWS x COLS block of C stays in registers while k runs over all of A' and B. */
static void axpy_rows(size_t dim_i, size_t dim_j, size_t dim_k, const float *a, size_t a_row,
                      size_t a_col, const float *b, size_t ldb, float *c, size_t ldc,
                      float a_scale)
{
    size_t j_main = dim_j - dim_j % COLS;
    size_t i_main = dim_i - dim_i % ROWS;
    for (size_t i0 = 0; i0 < i_main; i0 += ROWS) {
        for (size_t j0 = 0; j0 < j_main; j0 += COLS) {
            float acc[ROWS][COLS];
            for (int r = 0; r < ROWS; ++r)
                for (int l = 0; l < COLS; ++l)
                    acc[r][l] = c[(i0 + r) * ldc + j0 + l];
            for (size_t k = 0; k < dim_k; ++k) {
                const float *bk = b + k * ldb + j0;
                for (int r = 0; r < ROWS; ++r) {
                    float x = a[(i0 + r) * a_row + k * a_col] * a_scale;
                    for (int l = 0; l < COLS; ++l)
                        acc[r][l] += x * bk[l];
                }
            }
            for (int r = 0; r < ROWS; ++r)
                for (int l = 0; l < COLS; ++l)
                    c[(i0 + r) * ldc + j0 + l] = acc[r][l];
        }
    }
    /* Edges: the rows below i_main and the columns right of j_main. */
    for (size_t i = 0; i < dim_i; ++i) {
        size_t j_start = i < i_main ? j_main : 0;
        if (j_start >= dim_j)
            continue;
        float *ci = c + i * ldc;
        for (size_t k = 0; k < dim_k; ++k) {
            float x = a[i * a_row + k * a_col] * a_scale;
            const float *bk = b + k * ldb;
            for (size_t j = j_start; j < dim_j; ++j)
                ci[j] += x * bk[j];
        }
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
    if (transpose_b && !transpose_a && a_scale == 1.0f) {
        dot_rows(dim_i, dim_j, dim_k, a, stride_a, b, stride_b, c, stride_c);
    } else if (!transpose_b) {
        size_t a_row = transpose_a ? 1 : stride_a, a_col = transpose_a ? stride_a : 1;
        /* K in chunks, so that the rows of B a chunk reads stay in cache across row blocks
         * (the stacked weight gradient has K = B * L rows); sums keep their K order. */
        for (size_t k0 = 0; k0 < dim_k; k0 += K_CHUNK) {
            size_t kn = dim_k - k0 < K_CHUNK ? dim_k - k0 : K_CHUNK;
            axpy_rows(dim_i, dim_j, kn, a + k0 * a_col, a_row, a_col, b + k0 * stride_b,
                      stride_b, c, stride_c, a_scale);
        }
    } else {
        for (size_t i = 0; i < dim_i; ++i)
            for (size_t j = 0; j < dim_j; ++j) {
                float s = 0.0f;
                for (size_t k = 0; k < dim_k; ++k) {
                    float x = transpose_a ? a[k * stride_a + i] : a[i * stride_a + k];
                    s += x * a_scale * b[j * stride_b + k];
                }
                c[i * stride_c + j] += s;
            }
    }
}
#endif
#else
typedef int ef_portable_backend_not_selected;
#endif
