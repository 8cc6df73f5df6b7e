/* Portable matmul backend: plain C, no accelerator (the default build).
 *
 * fp32: products accumulate in float, in register blocks of C: written with vectors of EF_VEC
 * floats where the core has a vector unit (each lane its own sum; zero entries of A skipped,
 * exact for finite B), scalar 4 x 4 blocks where it has none (EF_SCALAR_CORE).
 * bf16: Gemmini's BF16 config, operation by operation: inputs scaled and rounded to bf16,
 * a bf16 accumulator rounded (to nearest even) after every multiply-accumulate in K order,
 * in 4 x 4 blocks of C (on RISC-V, each as two 4 x 2 halves: rv_bf16_block).
 * RISC-V with the V extension (`make riscv_rvv`), fp32: RVV 1.0 kernels, vector-length
 * agnostic, below the scalar ones. */
#ifndef EDGEFPTT_GEMMINI
#include <string.h>

#include "matmul.h"

#if EDGEFPTT_BF16
static inline float rne(float v) { return ef_from_bf16(ef_to_bf16(v, 0)); }

#if defined(__GNUC__) && !defined(__clang__)
#define EF_BF16_INLINE inline __attribute__((always_inline))
#define EF_UNROLL4 _Pragma("GCC unroll 4")
#elif defined(__GNUC__)
#define EF_BF16_INLINE inline __attribute__((always_inline))
#define EF_UNROLL4 _Pragma("unroll 4")
#else
#define EF_BF16_INLINE inline
#define EF_UNROLL4
#endif

/* A block of up to 4 x 4 elements of C: each input converted (and A scaled and rounded) once
 * per block, the accumulators kept in registers. Full blocks are compiled with ni = nj = 4. */
static EF_BF16_INLINE void bf16_block(size_t ni, size_t nj, size_t dim_k, const ef_elem *a,
                                      size_t a_row, size_t a_col, const ef_elem *b, size_t b_k,
                                      size_t b_j, const ef_elem *d, size_t d_row, ef_elem *c,
                                      size_t stride_c, float a_scale)
{
    float acc[4][4] = {{0.0f}}; /* (set below; initialized for the compiler's sake) */
    EF_UNROLL4
    for (size_t r = 0; r < ni; ++r) {
        EF_UNROLL4
        for (size_t q = 0; q < nj; ++q)
            acc[r][q] = d == NULL ? 0.0f : ef_from_bf16(d[r * d_row + q]);
    }
    for (size_t k = 0; k < dim_k; ++k) {
        float x[4] = {0.0f}, y[4] = {0.0f};
        EF_UNROLL4
        for (size_t r = 0; r < ni; ++r) {
            x[r] = ef_from_bf16(a[r * a_row + k * a_col]);
            if (a_scale != 1.0f)
                x[r] = rne(x[r] * a_scale);
        }
        EF_UNROLL4
        for (size_t q = 0; q < nj; ++q)
            y[q] = ef_from_bf16(b[k * b_k + q * b_j]);
        EF_UNROLL4
        for (size_t r = 0; r < ni; ++r) {
            EF_UNROLL4
            for (size_t q = 0; q < nj; ++q) /* a bf16 product is exact in fp32 */
                acc[r][q] = rne(acc[r][q] + x[r] * y[q]);
        }
    }
    EF_UNROLL4
    for (size_t r = 0; r < ni; ++r) {
        EF_UNROLL4
        for (size_t q = 0; q < nj; ++q)
            c[r * stride_c + q] = ef_to_bf16(acc[r][q], 0);
    }
}

#if EF_RV_BF16 /* runtime.h */
/* RISC-V with F: a 4 x 4 block as two halves of 4 rows by 2 columns, whose eight accumulators
 * are bf16 bit patterns in integer registers (their rounding is integer arithmetic), moved to a
 * float register for each multiply-add with ef_rv_float, no NaN test per multiply-add (see
 * ef_ra). Sixteen accumulators do not fit the integer registers with the temporaries (GCC
 * spills them). The halves take turns over blocks of EF_RV_KB values of k, so that the lines
 * of A and B one half reads are still cached when the other reads them. The products, sums and
 * roundings are those of bf16_block, in the same k order. */
#define EF_RV_KB 32
static inline float rv_widen(ef_elem h) { return ef_rv_float((uint32_t)h << 16); }
/* The bits of rne(v) for v the result of an fp32 operation. */
static inline uint32_t rv_rne_bits(float v)
{
    uint32_t u = ef_rv_bits(v);
    return (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
}
#define EF_RV_MAC(r, q) c##r##q = rv_rne_bits(x##r * y##q + ef_rv_float(c##r##q))
/* One half over kn values of k, its accumulators in acc[8] ([2 * row + column]). ta, tb and
 * scaled are constants in each copy below: the strides that are 1 then cost no register, and
 * the k loop keeps all its values in registers (with the strides as arguments GCC reloaded two
 * of them from the stack every k). */
static inline __attribute__((always_inline)) void rv_half(size_t kn, const ef_elem *a,
                                                          size_t a_stride, const ef_elem *b,
                                                          size_t b_stride, float a_scale,
                                                          uint32_t *acc, int ta, int tb,
                                                          int scaled)
{
    size_t a_row = ta ? 1 : a_stride, a_col = ta ? a_stride : 1;
    size_t b_k = tb ? 1 : b_stride, b_j = tb ? b_stride : 1;
    uint32_t c00 = acc[0], c01 = acc[1], c10 = acc[2], c11 = acc[3];
    uint32_t c20 = acc[4], c21 = acc[5], c30 = acc[6], c31 = acc[7];
    for (size_t k = 0; k < kn; ++k) {
        float x0 = rv_widen(a[k * a_col]), x1 = rv_widen(a[a_row + k * a_col]);
        float x2 = rv_widen(a[2 * a_row + k * a_col]), x3 = rv_widen(a[3 * a_row + k * a_col]);
        if (scaled) {
            x0 = ef_rv_float(rv_rne_bits(x0 * a_scale));
            x1 = ef_rv_float(rv_rne_bits(x1 * a_scale));
            x2 = ef_rv_float(rv_rne_bits(x2 * a_scale));
            x3 = ef_rv_float(rv_rne_bits(x3 * a_scale));
        }
        float y0 = rv_widen(b[k * b_k]), y1 = rv_widen(b[k * b_k + b_j]);
        EF_RV_MAC(0, 0);
        EF_RV_MAC(0, 1);
        EF_RV_MAC(1, 0);
        EF_RV_MAC(1, 1);
        EF_RV_MAC(2, 0);
        EF_RV_MAC(2, 1);
        EF_RV_MAC(3, 0);
        EF_RV_MAC(3, 1);
    }
    acc[0] = c00, acc[1] = c01, acc[2] = c10, acc[3] = c11;
    acc[4] = c20, acc[5] = c21, acc[6] = c30, acc[7] = c31;
}
typedef void (*rv_half_fn)(size_t, const ef_elem *, size_t, const ef_elem *, size_t, float,
                           uint32_t *);
#define EF_RV_HALF(name, ta, tb, scaled)                                                  \
    __attribute__((noinline)) static void name(size_t kn, const ef_elem *a, size_t sa,    \
                                               const ef_elem *b, size_t sb, float s,      \
                                               uint32_t *acc)                             \
    {                                                                                     \
        rv_half(kn, a, sa, b, sb, s, acc, ta, tb, scaled);                                \
    }
EF_RV_HALF(rv_half_nn, 0, 0, 0)
EF_RV_HALF(rv_half_nn_scaled, 0, 0, 1)
EF_RV_HALF(rv_half_nt, 0, 1, 0)
EF_RV_HALF(rv_half_nt_scaled, 0, 1, 1)
EF_RV_HALF(rv_half_tn, 1, 0, 0)
EF_RV_HALF(rv_half_tn_scaled, 1, 0, 1)
EF_RV_HALF(rv_half_tt, 1, 1, 0)
EF_RV_HALF(rv_half_tt_scaled, 1, 1, 1)
static const rv_half_fn rv_halves[8] = {
    rv_half_nn, rv_half_nn_scaled, rv_half_nt, rv_half_nt_scaled,
    rv_half_tn, rv_half_tn_scaled, rv_half_tt, rv_half_tt_scaled,
};
static void rv_bf16_block(size_t dim_k, const ef_elem *a, size_t stride_a, bool ta,
                          const ef_elem *b, size_t stride_b, bool tb, const ef_elem *d,
                          size_t d_row, ef_elem *c, size_t stride_c, float a_scale)
{
    rv_half_fn half = rv_halves[4 * ta + 2 * tb + (a_scale != 1.0f)];
    size_t a_col = ta ? stride_a : 1, b_k = tb ? 1 : stride_b, b_j = tb ? stride_b : 1;
    uint32_t acc[2][8]; /* [half][2 * row + column in the half] */
    for (int h = 0; h < 2; ++h)
        for (int r = 0; r < 4; ++r)
            for (int q = 0; q < 2; ++q)
                acc[h][2 * r + q] = d == NULL ? 0u : (uint32_t)d[r * d_row + 2 * h + q] << 16;
    for (size_t k0 = 0; k0 < dim_k; k0 += EF_RV_KB) {
        size_t kn = dim_k - k0 < EF_RV_KB ? dim_k - k0 : EF_RV_KB;
        const ef_elem *ak = a + k0 * a_col, *bk = b + k0 * b_k;
        half(kn, ak, stride_a, bk, stride_b, a_scale, acc[0]);
        half(kn, ak, stride_a, bk + 2 * b_j, stride_b, a_scale, acc[1]);
    }
    for (int h = 0; h < 2; ++h)
        for (int r = 0; r < 4; ++r)
            for (int q = 0; q < 2; ++q)
                c[r * stride_c + 2 * h + q] = ef_to_bf16(ef_rv_float(acc[h][2 * r + q]), 0);
}
#endif

void ef_matmul_backend(size_t dim_i, size_t dim_j, size_t dim_k, const ef_elem *a,
                       const ef_elem *b, const ef_elem *d, ef_elem *c, size_t stride_a,
                       size_t stride_b, size_t stride_d, size_t stride_c, float a_scale,
                       bool repeating_bias, bool transpose_a, bool transpose_b)
{
    size_t a_row = transpose_a ? 1 : stride_a, a_col = transpose_a ? stride_a : 1;
    size_t b_k = transpose_b ? 1 : stride_b, b_j = transpose_b ? stride_b : 1;
    size_t d_row = repeating_bias ? 0 : stride_d;
    for (size_t i = 0; i < dim_i; i += 4) {
        size_t ni = dim_i - i < 4 ? dim_i - i : 4;
        for (size_t j = 0; j < dim_j; j += 4) {
            size_t nj = dim_j - j < 4 ? dim_j - j : 4;
            const ef_elem *dij = d == NULL ? NULL : d + i * d_row + j;
            const ef_elem *aij = a + i * a_row;
            const ef_elem *bij = b + j * b_j;
#if EF_RV_BF16
            if (ni == 4 && nj == 4)
                rv_bf16_block(dim_k, aij, stride_a, transpose_a, bij, stride_b, transpose_b, dij,
                              d_row, c + i * stride_c + j, stride_c, a_scale);
            else
#else
            if (ni == 4 && nj == 4)
                bf16_block(4, 4, dim_k, aij, a_row, a_col, bij, b_k, b_j, dij, d_row,
                           c + i * stride_c + j, stride_c, a_scale);
            else
#endif
                bf16_block(ni, nj, dim_k, aij, a_row, a_col, bij, b_k, b_j, dij, d_row,
                           c + i * stride_c + j, stride_c, a_scale);
        }
    }
}
#else

/* Cores without a vector unit (rv64gc, Cortex-M4F/M7; or -DEDGEFPTT_SCALAR_MATMUL anywhere): the
 * GCC vector types below would be emulated there, through memory and memcpy calls, so these
 * cores get scalar kernels instead: 4 x 4 blocks of C in registers (16 accumulators, 4 values
 * of A and 4 of B per k: 24 of the 32 float registers of RISC-V F and of the Cortex-M FPU), the
 * products added with fused multiply-add where the build contracts (every build but PORTABLE=1
 * does), each C element summing its products in k order. No zero skipping: the instructions a
 * pass takes do not depend on the data. */
#if EF_SCALAR_CORE /* runtime.h */
#if defined(__GNUC__)
#define EF_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define EF_ALWAYS_INLINE inline
#endif

/* C[0..3][0..3] (ldc apart) += sum over kn values of k of A'[r][k] B[k][q], where
 * A'[r][k] = a[r * a_row + k * a_col] (times a_scale when `scaled`) and B[k][q] = b[k * ldb + q]
 * (`nt`: B[k][q] = b[q * ldb + k], the rows of a transposed B). */
static EF_ALWAYS_INLINE void block4x4(size_t kn, const float *a, size_t a_row, size_t a_col,
                                      const float *b, size_t ldb, int nt, float *c, size_t ldc,
                                      float a_scale, int scaled)
{
    float *c1 = c + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
    float c00 = c[0], c01 = c[1], c02 = c[2], c03 = c[3];
    float c10 = c1[0], c11 = c1[1], c12 = c1[2], c13 = c1[3];
    float c20 = c2[0], c21 = c2[1], c22 = c2[2], c23 = c2[3];
    float c30 = c3[0], c31 = c3[1], c32 = c3[2], c33 = c3[3];
    const float *a0 = a, *a1 = a + a_row, *a2 = a1 + a_row, *a3 = a2 + a_row;
    const float *b0 = b, *b1 = b + (nt ? ldb : 1), *b2 = b1 + (nt ? ldb : 1);
    const float *b3 = b2 + (nt ? ldb : 1);
    size_t b_step = nt ? 1 : ldb;
    for (size_t k = 0; k < kn; ++k) {
        float x0 = *a0, x1 = *a1, x2 = *a2, x3 = *a3;
        if (scaled)
            x0 *= a_scale, x1 *= a_scale, x2 *= a_scale, x3 *= a_scale;
        float y0 = *b0, y1 = *b1, y2 = *b2, y3 = *b3;
        c00 += x0 * y0, c01 += x0 * y1, c02 += x0 * y2, c03 += x0 * y3;
        c10 += x1 * y0, c11 += x1 * y1, c12 += x1 * y2, c13 += x1 * y3;
        c20 += x2 * y0, c21 += x2 * y1, c22 += x2 * y2, c23 += x2 * y3;
        c30 += x3 * y0, c31 += x3 * y1, c32 += x3 * y2, c33 += x3 * y3;
        a0 += a_col, a1 += a_col, a2 += a_col, a3 += a_col;
        b0 += b_step, b1 += b_step, b2 += b_step, b3 += b_step;
    }
    c[0] = c00, c[1] = c01, c[2] = c02, c[3] = c03;
    c1[0] = c10, c1[1] = c11, c1[2] = c12, c1[3] = c13;
    c2[0] = c20, c2[1] = c21, c2[2] = c22, c2[3] = c23;
    c3[0] = c30, c3[1] = c31, c3[2] = c32, c3[3] = c33;
}

/* The four variants the pass uses, each compiled on its own (nt and scaled constant). */
static void nn_plain(size_t kn, const float *a, size_t a_row, size_t a_col, const float *b,
                     size_t ldb, float *c, size_t ldc, float a_scale)
{
    block4x4(kn, a, a_row, a_col, b, ldb, 0, c, ldc, a_scale, 0);
}
static void nn_scaled(size_t kn, const float *a, size_t a_row, size_t a_col, const float *b,
                      size_t ldb, float *c, size_t ldc, float a_scale)
{
    block4x4(kn, a, a_row, a_col, b, ldb, 0, c, ldc, a_scale, 1);
}
static void nt_plain(size_t kn, const float *a, size_t a_row, size_t a_col, const float *b,
                     size_t ldb, float *c, size_t ldc, float a_scale)
{
    block4x4(kn, a, a_row, a_col, b, ldb, 1, c, ldc, a_scale, 0);
}
static void nt_scaled(size_t kn, const float *a, size_t a_row, size_t a_col, const float *b,
                      size_t ldb, float *c, size_t ldc, float a_scale)
{
    block4x4(kn, a, a_row, a_col, b, ldb, 1, c, ldc, a_scale, 1);
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
    size_t b_row = transpose_b ? 1 : stride_b, b_col = transpose_b ? stride_b : 1;
    int scaled = a_scale != 1.0f;
    void (*block)(size_t, const float *, size_t, size_t, const float *, size_t, float *, size_t,
                  float) = transpose_b ? (scaled ? nt_scaled : nt_plain)
                                       : (scaled ? nn_scaled : nn_plain);
    size_t i_main = dim_i - dim_i % 4, j_main = dim_j - dim_j % 4;
    for (size_t i = 0; i < i_main; i += 4)
        for (size_t j = 0; j < j_main; j += 4)
            block(dim_k, a + i * a_row, a_row, a_col, b + j * b_col, stride_b, c + i * stride_c + j,
                  stride_c, a_scale);
    /* The edges (rows from i_main, columns from j_main), element by element, in k order. */
    for (size_t i = 0; i < dim_i; ++i)
        for (size_t j = i < i_main ? j_main : 0; j < dim_j; ++j) {
            float acc = c[i * stride_c + j];
            for (size_t k = 0; k < dim_k; ++k) {
                float x = a[i * a_row + k * a_col];
                if (scaled)
                    x *= a_scale;
                acc += x * b[k * b_row + j * b_col];
            }
            c[i * stride_c + j] = acc;
        }
}
#elif defined(__riscv_vector)

/* RISC-V cores with the V extension (RVV 1.0; `make riscv_rvv`, clang -march=rv64gcv): written
 * vector-length agnostic, so one binary runs on any VLEN. C in blocks of up to RV_MR rows by vl
 * columns (vl set by vsetvl, up to 4 vector registers' worth: LMUL 4), kept in vector registers
 * over a block of k: per k, one vector of B (a unit-stride load; a strided one when B is
 * transposed: the column of B^T is a row of B), and per row of C one scalar of A and one fused
 * multiply-add of the vector (vfmacc.vf). The RV_MR x kn scalars of A (times a_scale when it is
 * not 1, rounded once as in the scalar kernels) are first copied into a small contiguous buffer,
 * so that the loop over k loads them at fixed offsets from one pointer. Each C element sums its
 * products in k order with fused multiply-add: the same operations, in the same order, as the
 * scalar kernels above with contraction; no zero skipping (data-independent). */
#include <riscv_vector.h>

enum { RV_MR = 6, RV_KC = 256 };
#if defined(__clang__)
#define RV_UNROLL4 _Pragma("clang loop unroll_count(4)")
#else
#define RV_UNROLL4 _Pragma("GCC unroll 4")
#endif

/* C[r][0..vl) += sum over k < kn of ap[k * RV_MR + r] * B[k][0..vl) for r < rows, where
 * B[k][q] = b[k * ldb + q] (`nt`: b[q * ldb + k]). rows and nt are constants after inlining:
 * the unused accumulators disappear. */
static inline __attribute__((always_inline)) void rv_block(int rows, int nt, size_t kn,
                                                           const float *ap, const float *b,
                                                           size_t ldb, float *c, size_t ldc,
                                                           size_t vl)
{
    vfloat32m4_t z = __riscv_vfmv_v_f_f32m4(0.0f, vl);
    vfloat32m4_t s0 = __riscv_vle32_v_f32m4(c, vl);
    vfloat32m4_t s1 = rows > 1 ? __riscv_vle32_v_f32m4(c + ldc, vl) : z;
    vfloat32m4_t s2 = rows > 2 ? __riscv_vle32_v_f32m4(c + 2 * ldc, vl) : z;
    vfloat32m4_t s3 = rows > 3 ? __riscv_vle32_v_f32m4(c + 3 * ldc, vl) : z;
    vfloat32m4_t s4 = rows > 4 ? __riscv_vle32_v_f32m4(c + 4 * ldc, vl) : z;
    vfloat32m4_t s5 = rows > 5 ? __riscv_vle32_v_f32m4(c + 5 * ldc, vl) : z;
    ptrdiff_t b_bytes = (ptrdiff_t)(ldb * sizeof(float));
    RV_UNROLL4
    for (size_t k = 0; k < kn; ++k, ap += RV_MR) {
        vfloat32m4_t y = nt ? __riscv_vlse32_v_f32m4(b + k, b_bytes, vl)
                            : __riscv_vle32_v_f32m4(b + k * ldb, vl);
        s0 = __riscv_vfmacc_vf_f32m4(s0, ap[0], y, vl);
        if (rows > 1)
            s1 = __riscv_vfmacc_vf_f32m4(s1, ap[1], y, vl);
        if (rows > 2)
            s2 = __riscv_vfmacc_vf_f32m4(s2, ap[2], y, vl);
        if (rows > 3)
            s3 = __riscv_vfmacc_vf_f32m4(s3, ap[3], y, vl);
        if (rows > 4)
            s4 = __riscv_vfmacc_vf_f32m4(s4, ap[4], y, vl);
        if (rows > 5)
            s5 = __riscv_vfmacc_vf_f32m4(s5, ap[5], y, vl);
    }
    __riscv_vse32_v_f32m4(c, s0, vl);
    if (rows > 1)
        __riscv_vse32_v_f32m4(c + ldc, s1, vl);
    if (rows > 2)
        __riscv_vse32_v_f32m4(c + 2 * ldc, s2, vl);
    if (rows > 3)
        __riscv_vse32_v_f32m4(c + 3 * ldc, s3, vl);
    if (rows > 4)
        __riscv_vse32_v_f32m4(c + 4 * ldc, s4, vl);
    if (rows > 5)
        __riscv_vse32_v_f32m4(c + 5 * ldc, s5, vl);
}

/* One row block of C (rows <= RV_MR) against kn rows of B: every column, vl at a time. */
#define RV_ROWS(R, NT)                                                                        \
    for (size_t j = 0; j < dim_j; j += vl) {                                                  \
        vl = __riscv_vsetvl_e32m4(dim_j - j);                                                 \
        rv_block(R, NT, kn, ap, NT ? b + j * ldb : b + j, ldb, c + j, ldc, vl);               \
    }
static void rv_row_block(int rows, int nt, size_t dim_j, size_t kn, const float *ap,
                         const float *b, size_t ldb, float *c, size_t ldc)
{
    size_t vl;
    switch (rows * 2 + nt) {
    case 2: RV_ROWS(1, 0) break;
    case 3: RV_ROWS(1, 1) break;
    case 4: RV_ROWS(2, 0) break;
    case 5: RV_ROWS(2, 1) break;
    case 6: RV_ROWS(3, 0) break;
    case 7: RV_ROWS(3, 1) break;
    case 8: RV_ROWS(4, 0) break;
    case 9: RV_ROWS(4, 1) break;
    case 10: RV_ROWS(5, 0) break;
    case 11: RV_ROWS(5, 1) break;
    case 12: RV_ROWS(6, 0) break;
    default: RV_ROWS(6, 1) break;
    }
}
#undef RV_ROWS

void ef_matmul_backend(size_t dim_i, size_t dim_j, size_t dim_k, const ef_elem *a,
                       const ef_elem *b, const ef_elem *d, ef_elem *c, size_t stride_a,
                       size_t stride_b, size_t stride_d, size_t stride_c, float a_scale,
                       bool repeating_bias, bool transpose_a, bool transpose_b)
{
    if (d != c) /* start from D (or zero); d == c accumulates into C as it is */
        for (size_t i = 0; i < dim_i; ++i)
            for (size_t j = 0, vl; j < dim_j; j += vl) {
                vl = __riscv_vsetvl_e32m8(dim_j - j);
                vfloat32m8_t v =
                    d == NULL ? __riscv_vfmv_v_f_f32m8(0.0f, vl)
                              : __riscv_vle32_v_f32m8(d + (repeating_bias ? 0 : i * stride_d) + j,
                                                      vl);
                __riscv_vse32_v_f32m8(c + i * stride_c + j, v, vl);
            }
    size_t a_row = transpose_a ? 1 : stride_a, a_col = transpose_a ? stride_a : 1;
    int scaled = a_scale != 1.0f;
    float pack[RV_MR * RV_KC];
    for (size_t k0 = 0; k0 < dim_k; k0 += RV_KC) {
        size_t kn = dim_k - k0 < RV_KC ? dim_k - k0 : RV_KC;
        const float *bk = transpose_b ? b + k0 : b + k0 * stride_b;
        for (size_t i = 0; i < dim_i; i += RV_MR) {
            int rows = dim_i - i < RV_MR ? (int)(dim_i - i) : RV_MR;
            const float *ai = a + i * a_row + k0 * a_col;
            for (size_t k = 0; k < kn; ++k)
                for (int r = 0; r < rows; ++r) {
                    float x = ai[(size_t)r * a_row + k * a_col];
                    pack[k * RV_MR + (size_t)r] = scaled ? x * a_scale : x;
                }
            rv_row_block(rows, transpose_b, dim_j, kn, pack, bk, stride_b, c + i * stride_c,
                         stride_c);
        }
    }
}
#else

/* Vectors of EF_VEC floats (4, 8 or 16): GCC/Clang vector extensions where available, else a
 * struct of EF_VEC floats. Without -DEF_VEC the width follows the target: 16 with AVX-512F, 8
 * with AVX, else 4 (SSE2 on baseline x86-64, NEON on Arm, plain scalar code where the target
 * has no vector unit), so the default -O2 build on x86-64 uses four-float vectors. Each lane
 * is an IEEE float multiply or add, in the order written: C99 mode keeps -ffp-contract=off (no
 * fused multiply-add) unless the build asks for it (`make host NATIVE=1` does). In the
 * B-not-transposed kernel every C element sums its products in k order whatever the width;
 * in the dot products (B transposed) the width sets how many partial sums there are. */
#ifndef EF_VEC
#if defined(__AVX512F__)
#define EF_VEC 16
#elif defined(__AVX__)
#define EF_VEC 8
#else
#define EF_VEC 4
#endif
#endif
#if EF_VEC != 4 && EF_VEC != 8 && EF_VEC != 16
#error "EF_VEC must be 4, 8 or 16"
#endif
#if defined(__GNUC__) && !defined(EDGEFPTT_SCALAR_MATMUL)
typedef float vf __attribute__((vector_size(EF_VEC * sizeof(float))));
static inline vf vf_splat(float x) /* x - (+0) is x exactly, -0 included: one broadcast */
{
    const vf zero = {0.0f};
    return x - zero;
}
static inline vf vf_mac(vf acc, vf x, vf y) { return acc + x * y; }
static inline vf vf_mul(vf x, vf y) { return x * y; }
static inline float vf_lane(vf v, int l) { return v[l]; }
#else
typedef struct { float f[EF_VEC]; } vf;
static inline vf vf_splat(float x)
{
    vf v;
    for (int l = 0; l < EF_VEC; ++l)
        v.f[l] = x;
    return v;
}
static inline vf vf_mac(vf acc, vf x, vf y)
{
    for (int l = 0; l < EF_VEC; ++l)
        acc.f[l] += x.f[l] * y.f[l];
    return acc;
}
static inline vf vf_mul(vf x, vf y)
{
    for (int l = 0; l < EF_VEC; ++l)
        x.f[l] *= y.f[l];
    return x;
}
static inline float vf_lane(vf v, int l) { return v.f[l]; }
#endif
static inline vf vf_load(const float *p) /* unaligned */
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vf_store(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* Rows of C per register block; vectors of C per row in the block (four with 32 vector
 * registers, AVX-512; two otherwise, so that blocks fit 16 registers); rows of B per cache
 * block. */
#if EF_VEC == 16
#define NRV 4
#else
#define NRV 2
#endif
enum { V = EF_VEC, MR = 4, NR = NRV * EF_VEC, KC = 64 };

/* True when A[i][k] is zero for all four rows of a block (their products are skipped). */
static inline int all_zero4(const float *ak, size_t a_row)
{
    return ak[0] == 0.0f && ak[a_row] == 0.0f && ak[2 * a_row] == 0.0f && ak[3 * a_row] == 0.0f;
}

/* A'[i][k] for the four rows of a block; true when all four are zero. */
static inline int load_a4(const float *ak, size_t a_row, float a_scale, float *x)
{
    if (all_zero4(ak, a_row))
        return 1;
    x[0] = ak[0], x[1] = ak[a_row], x[2] = ak[2 * a_row], x[3] = ak[3 * a_row];
    if (a_scale != 1.0f)
        x[0] *= a_scale, x[1] *= a_scale, x[2] *= a_scale, x[3] *= a_scale;
    return 0;
}

/* C[i][j] += sum_k A'[i][k] * B[k][j] for one MR x NR block of C kept in registers over kn
 * values of k, with A'[i][k] = a_scale * a[i * a_row + k * a_col]. Products of A' entries that
 * are zero are skipped: they add +-0 (B is finite), and skipping them spares the long runs of
 * zero gradient deep in a long backward pass from the multiplies. */
#if NRV == 4
/* With 32 registers: the scalars of A are broadcast straight from memory (a load, no shuffle),
 * and a_scale, when it is not 1, scales the row of B instead (the same products up to one
 * rounding). */
static void block_mr_nr(size_t kn, const float *a, size_t a_row, size_t a_col, const float *b,
                        size_t ldb, float *c, size_t ldc, float a_scale)
{
    vf c00 = vf_load(c), c01 = vf_load(c + V), c02 = vf_load(c + 2 * V), c03 = vf_load(c + 3 * V);
    float *c1 = c + ldc, *c2 = c + 2 * ldc, *c3 = c + 3 * ldc;
    vf c10 = vf_load(c1), c11 = vf_load(c1 + V), c12 = vf_load(c1 + 2 * V), c13 = vf_load(c1 + 3 * V);
    vf c20 = vf_load(c2), c21 = vf_load(c2 + V), c22 = vf_load(c2 + 2 * V), c23 = vf_load(c2 + 3 * V);
    vf c30 = vf_load(c3), c31 = vf_load(c3 + V), c32 = vf_load(c3 + 2 * V), c33 = vf_load(c3 + 3 * V);
    vf sc = vf_splat(a_scale);
    for (size_t k = 0; k < kn; ++k) {
        const float *ak = a + k * a_col;
        if (all_zero4(ak, a_row))
            continue;
        const float *bk = b + k * ldb;
        vf b0 = vf_load(bk), b1 = vf_load(bk + V), b2 = vf_load(bk + 2 * V), b3 = vf_load(bk + 3 * V);
        if (a_scale != 1.0f)
            b0 = b0 * sc, b1 = b1 * sc, b2 = b2 * sc, b3 = b3 * sc;
        vf s = vf_splat(ak[0]);
        c00 = vf_mac(c00, s, b0), c01 = vf_mac(c01, s, b1), c02 = vf_mac(c02, s, b2), c03 = vf_mac(c03, s, b3);
        s = vf_splat(ak[a_row]);
        c10 = vf_mac(c10, s, b0), c11 = vf_mac(c11, s, b1), c12 = vf_mac(c12, s, b2), c13 = vf_mac(c13, s, b3);
        s = vf_splat(ak[2 * a_row]);
        c20 = vf_mac(c20, s, b0), c21 = vf_mac(c21, s, b1), c22 = vf_mac(c22, s, b2), c23 = vf_mac(c23, s, b3);
        s = vf_splat(ak[3 * a_row]);
        c30 = vf_mac(c30, s, b0), c31 = vf_mac(c31, s, b1), c32 = vf_mac(c32, s, b2), c33 = vf_mac(c33, s, b3);
    }
    vf_store(c, c00), vf_store(c + V, c01), vf_store(c + 2 * V, c02), vf_store(c + 3 * V, c03);
    vf_store(c1, c10), vf_store(c1 + V, c11), vf_store(c1 + 2 * V, c12), vf_store(c1 + 3 * V, c13);
    vf_store(c2, c20), vf_store(c2 + V, c21), vf_store(c2 + 2 * V, c22), vf_store(c2 + 3 * V, c23);
    vf_store(c3, c30), vf_store(c3 + V, c31), vf_store(c3 + 2 * V, c32), vf_store(c3 + 3 * V, c33);
}
#else
static void block_mr_nr(size_t kn, const float *a, size_t a_row, size_t a_col, const float *b,
                        size_t ldb, float *c, size_t ldc, float a_scale)
{
    vf c00 = vf_load(c), c01 = vf_load(c + V);
    vf c10 = vf_load(c + ldc), c11 = vf_load(c + ldc + V);
    vf c20 = vf_load(c + 2 * ldc), c21 = vf_load(c + 2 * ldc + V);
    vf c30 = vf_load(c + 3 * ldc), c31 = vf_load(c + 3 * ldc + V);
    for (size_t k = 0; k < kn; ++k) {
        float x[4];
        if (load_a4(a + k * a_col, a_row, a_scale, x))
            continue;
        const float *bk = b + k * ldb;
        vf b0 = vf_load(bk), b1 = vf_load(bk + V);
        vf s = vf_splat(x[0]);
        c00 = vf_mac(c00, s, b0), c01 = vf_mac(c01, s, b1);
        s = vf_splat(x[1]);
        c10 = vf_mac(c10, s, b0), c11 = vf_mac(c11, s, b1);
        s = vf_splat(x[2]);
        c20 = vf_mac(c20, s, b0), c21 = vf_mac(c21, s, b1);
        s = vf_splat(x[3]);
        c30 = vf_mac(c30, s, b0), c31 = vf_mac(c31, s, b1);
    }
    vf_store(c, c00), vf_store(c + V, c01);
    vf_store(c + ldc, c10), vf_store(c + ldc + V, c11);
    vf_store(c + 2 * ldc, c20), vf_store(c + 2 * ldc + V, c21);
    vf_store(c + 3 * ldc, c30), vf_store(c + 3 * ldc + V, c31);
}
#endif

/* One vector of columns for the four rows of a block (the columns left of NR). */
static void block_mr_v(size_t kn, const float *a, size_t a_row, size_t a_col, const float *b,
                       size_t ldb, float *c, size_t ldc, float a_scale)
{
    vf c0 = vf_load(c), c1 = vf_load(c + ldc), c2 = vf_load(c + 2 * ldc), c3 = vf_load(c + 3 * ldc);
    for (size_t k = 0; k < kn; ++k) {
        float x[4];
        if (load_a4(a + k * a_col, a_row, a_scale, x))
            continue;
        vf bk = vf_load(b + k * ldb);
        c0 = vf_mac(c0, vf_splat(x[0]), bk), c1 = vf_mac(c1, vf_splat(x[1]), bk);
        c2 = vf_mac(c2, vf_splat(x[2]), bk), c3 = vf_mac(c3, vf_splat(x[3]), bk);
    }
    vf_store(c, c0), vf_store(c + ldc, c1), vf_store(c + 2 * ldc, c2), vf_store(c + 3 * ldc, c3);
}

/* The same for a rows x cols block at the edge of C, element by element. */
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

/* An edge column when A is transposed (a_row == 1, A' rows contiguous): a vector of rows of C at
 * a time, C[i][j] += sum_k A'[i][k] * B[k][j] with B[k][j] broadcast. Same k order. */
static void column_rows(size_t rows, size_t kn, const float *a, size_t a_col, const float *b,
                        size_t ldb, float *c, size_t ldc, float a_scale)
{
    size_t r_main = rows - rows % V;
    for (size_t r = 0; r < r_main; r += V) {
        float acc[EF_VEC];
        for (int l = 0; l < V; ++l)
            acc[l] = c[(r + (size_t)l) * ldc];
        vf s = vf_load(acc);
        for (size_t k = 0; k < kn; ++k) {
            vf x = vf_load(a + k * a_col + r);
            if (a_scale != 1.0f)
                x = vf_mul(x, vf_splat(a_scale));
            s = vf_mac(s, x, vf_splat(b[k * ldb]));
        }
        vf_store(acc, s);
        for (int l = 0; l < V; ++l)
            c[(r + (size_t)l) * ldc] = acc[l];
    }
    if (r_main < rows)
        block_edge(rows - r_main, 1, kn, a + r_main, 1, a_col, b, ldb, c + r_main * ldc, ldc,
                   a_scale);
}

/* C += A' B, B not transposed: k in blocks of KC rows of B (they stay in L1 while every block
 * of C passes over them), C in MR x NR register blocks, then MR x V ones, then the edges. Each
 * C element sums its products in k order. */
static void matmul_nn(size_t dim_i, size_t dim_j, size_t dim_k, const float *a, size_t a_row,
                      size_t a_col, const float *b, size_t ldb, float *c, size_t ldc,
                      float a_scale)
{
    size_t i_main = dim_i - dim_i % MR, j_nr = dim_j - dim_j % NR, j_v = dim_j - dim_j % V;
    for (size_t k0 = 0; k0 < dim_k; k0 += KC) {
        size_t kn = dim_k - k0 < KC ? dim_k - k0 : KC;
        const float *ak = a + k0 * a_col, *bk = b + k0 * ldb;
        for (size_t i = 0; i < i_main; i += MR) {
            const float *ai = ak + i * a_row;
            float *ci = c + i * ldc;
            for (size_t j = 0; j < j_nr; j += NR)
                block_mr_nr(kn, ai, a_row, a_col, bk + j, ldb, ci + j, ldc, a_scale);
            for (size_t j = j_nr; j < j_v; j += V)
                block_mr_v(kn, ai, a_row, a_col, bk + j, ldb, ci + j, ldc, a_scale);
            if (j_v < dim_j && a_row != 1)
                block_edge(MR, dim_j - j_v, kn, ai, a_row, a_col, bk + j_v, ldb, ci + j_v, ldc,
                           a_scale);
        }
        if (j_v < dim_j && a_row == 1) /* A transposed: the edge columns a vector of rows at a time */
            for (size_t j = j_v; j < dim_j; ++j)
                column_rows(i_main, kn, ak, a_col, bk + j, ldb, c + j, ldc, a_scale);
        if (i_main < dim_i)
            block_edge(dim_i - i_main, dim_j, kn, ak + i_main * a_row, a_row, a_col, bk, ldb,
                       c + i_main * ldc, ldc, a_scale);
    }
}

/* Horizontal sum of a vector of partial sums plus a scalar tail: the upper half added to the
 * lower half lane by lane down to four lanes, then (l0 + l2) + (l1 + l3). */
#if defined(__GNUC__) && !defined(EDGEFPTT_SCALAR_MATMUL)
typedef float vf4_t __attribute__((vector_size(4 * sizeof(float))));
#if EF_VEC >= 8
typedef float vf8_t __attribute__((vector_size(8 * sizeof(float))));
#endif
static inline float hsum(vf v, float tail)
{
#if EF_VEC == 16
    vf8_t lo8, hi8;
    memcpy(&lo8, &v, sizeof lo8);
    memcpy(&hi8, (const char *)&v + sizeof lo8, sizeof hi8);
    vf8_t v8 = lo8 + hi8;
#elif EF_VEC == 8
    vf8_t v8 = v;
#endif
#if EF_VEC >= 8
    vf4_t lo4, hi4;
    memcpy(&lo4, &v8, sizeof lo4);
    memcpy(&hi4, (const char *)&v8 + sizeof lo4, sizeof hi4);
    vf4_t v4 = lo4 + hi4;
#else
    vf4_t v4 = v;
#endif
    return ((v4[0] + v4[2]) + (v4[1] + v4[3])) + tail;
}
#else
static inline float hsum(vf v, float tail)
{
    float s[EF_VEC];
    for (int l = 0; l < EF_VEC; ++l)
        s[l] = vf_lane(v, l);
    for (int w = EF_VEC / 2; w > 0; w /= 2)
        for (int l = 0; l < w; ++l)
            s[l] += s[l + w];
    return s[0] + tail;
}
#endif

#if defined(__GNUC__) && !defined(EDGEFPTT_SCALAR_MATMUL) && EF_VEC == 16
/* Sixteen-float vectors (AVX-512, 32 registers): MR rows of A against four rows of B, sixteen
 * dot products in registers, so that B's rows are loaded once for four rows of A. The sixteen
 * vectors of partial sums are then reduced together, a transpose and add in four levels (each
 * halves the lanes per dot product and doubles the dot products per vector), into one vector
 * whose lane 4 i + q is the dot product of row i of A with row q of B. */
#define NT_WIDE 1
typedef int vi16_t __attribute__((vector_size(16 * sizeof(int))));
#if defined(__clang__)
#define SHUF16(x, y, ...) __builtin_shufflevector(x, y, __VA_ARGS__)
#else
#define SHUF16(x, y, ...) __builtin_shuffle(x, y, (vi16_t){__VA_ARGS__})
#endif
/* Level 1: halves of 8 lanes; x's first, then y's. */
static inline vf fold8(vf x, vf y)
{
    return SHUF16(x, y, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           SHUF16(x, y, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
}
/* Level 2: groups of 8 lanes into groups of 4. */
static inline vf fold4(vf x, vf y)
{
    return SHUF16(x, y, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           SHUF16(x, y, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
}
/* Level 3: groups of 4 into groups of 2. */
static inline vf fold2(vf x, vf y)
{
    return SHUF16(x, y, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           SHUF16(x, y, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
}
/* Level 4: groups of 2 into single lanes. */
static inline vf fold1(vf x, vf y)
{
    return SHUF16(x, y, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
           SHUF16(x, y, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}
/* Lanes from `first` on kept (all bits set), the ones before it zero. */
static inline vi16_t tail_mask(size_t first)
{
    const vi16_t lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const vi16_t from = {0};
    return lane >= from + (int)first; /* -1 (all ones) where true */
}
/* x with the lanes where keep is 0 set to +0 exactly (a bitwise and: no arithmetic on them). */
static inline vf vf_and(vf x, vi16_t keep)
{
    vi16_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits &= keep;
    memcpy(&x, &bits, sizeof x);
    return x;
}
/* The four dot products of one row: vector s0..s3 (row i, columns 0..3) -> groups of 4. */
static inline vf row4(vf s0, vf s1, vf s2, vf s3) { return fold4(fold8(s0, s1), fold8(s2, s3)); }

static size_t matmul_nt_wide(size_t dim_i, size_t dim_j, size_t dim_k, const float *a,
                             size_t lda, const float *b, size_t ldb, float *c, size_t ldc,
                             float a_scale)
{
    size_t k_main = dim_k - dim_k % V, i_main = dim_i - dim_i % MR, j_main = dim_j - dim_j % 4;
    for (size_t i = 0; i < i_main; i += MR) {
        const float *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        for (size_t j = 0; j < j_main; j += 4) {
            const float *b0 = b + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
            vf z = vf_splat(0.0f);
            vf s00 = z, s01 = z, s02 = z, s03 = z, s10 = z, s11 = z, s12 = z, s13 = z;
            vf s20 = z, s21 = z, s22 = z, s23 = z, s30 = z, s31 = z, s32 = z, s33 = z;
            for (size_t k = 0; k < k_main; k += V) {
                vf y0 = vf_load(b0 + k), y1 = vf_load(b1 + k);
                vf y2 = vf_load(b2 + k), y3 = vf_load(b3 + k);
                vf x = vf_load(a0 + k);
                s00 = vf_mac(s00, x, y0), s01 = vf_mac(s01, x, y1);
                s02 = vf_mac(s02, x, y2), s03 = vf_mac(s03, x, y3);
                x = vf_load(a1 + k);
                s10 = vf_mac(s10, x, y0), s11 = vf_mac(s11, x, y1);
                s12 = vf_mac(s12, x, y2), s13 = vf_mac(s13, x, y3);
                x = vf_load(a2 + k);
                s20 = vf_mac(s20, x, y0), s21 = vf_mac(s21, x, y1);
                s22 = vf_mac(s22, x, y2), s23 = vf_mac(s23, x, y3);
                x = vf_load(a3 + k);
                s30 = vf_mac(s30, x, y0), s31 = vf_mac(s31, x, y1);
                s32 = vf_mac(s32, x, y2), s33 = vf_mac(s33, x, y3);
            }
            if (k_main < dim_k) { /* the last V of k, the lanes already summed masked off */
                size_t k = dim_k - V;
                vi16_t keep = tail_mask(k_main - k);
                vf y0 = vf_and(vf_load(b0 + k), keep), y1 = vf_and(vf_load(b1 + k), keep);
                vf y2 = vf_and(vf_load(b2 + k), keep), y3 = vf_and(vf_load(b3 + k), keep);
                vf x = vf_and(vf_load(a0 + k), keep);
                s00 = vf_mac(s00, x, y0), s01 = vf_mac(s01, x, y1);
                s02 = vf_mac(s02, x, y2), s03 = vf_mac(s03, x, y3);
                x = vf_and(vf_load(a1 + k), keep);
                s10 = vf_mac(s10, x, y0), s11 = vf_mac(s11, x, y1);
                s12 = vf_mac(s12, x, y2), s13 = vf_mac(s13, x, y3);
                x = vf_and(vf_load(a2 + k), keep);
                s20 = vf_mac(s20, x, y0), s21 = vf_mac(s21, x, y1);
                s22 = vf_mac(s22, x, y2), s23 = vf_mac(s23, x, y3);
                x = vf_and(vf_load(a3 + k), keep);
                s30 = vf_mac(s30, x, y0), s31 = vf_mac(s31, x, y1);
                s32 = vf_mac(s32, x, y2), s33 = vf_mac(s33, x, y3);
            }
            vf dots = fold1(fold2(row4(s00, s01, s02, s03), row4(s10, s11, s12, s13)),
                            fold2(row4(s20, s21, s22, s23), row4(s30, s31, s32, s33)));
            dots = dots * vf_splat(a_scale);
            for (int r = 0; r < 4; ++r) { /* C row i + r, columns j..j+3: lanes 4r..4r+3 */
                float *cr = c + (i + (size_t)r) * ldc + j;
                vf4_t cv, dv;
                memcpy(&cv, cr, sizeof cv);
                memcpy(&dv, (const float *)&dots + 4 * r, sizeof dv);
                cv += dv;
                memcpy(cr, &cv, sizeof cv);
            }
        }
    }
    return j_main;
}
#endif

/* C[i][j] += a_scale * sum_k A[i][k] * B[j][k], B transposed: dot products of contiguous rows,
 * MR rows of A against two rows of B at a time, EF_VEC partial sums (lanes) per dot product. */
static void matmul_nt(size_t dim_i, size_t dim_j, size_t dim_k, const float *a, size_t lda,
                      const float *b, size_t ldb, float *c, size_t ldc, float a_scale)
{
    size_t k_main = dim_k - dim_k % V, i_main = dim_i - dim_i % MR, j_main = dim_j - dim_j % 2;
#ifdef NT_WIDE
    /* i_main rows, j_main columns by four rows of B; dots shorter than a vector go below */
    j_main = dim_k >= V ? matmul_nt_wide(dim_i, dim_j, dim_k, a, lda, b, ldb, c, ldc, a_scale) : 0;
#else
    for (size_t i = 0; i < i_main; i += MR) {
        const float *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        for (size_t j = 0; j < j_main; j += 2) {
            const float *b0 = b + j * ldb, *b1 = b0 + ldb;
            vf s00 = vf_splat(0.0f), s01 = s00, s10 = s00, s11 = s00;
            vf s20 = s00, s21 = s00, s30 = s00, s31 = s00;
            for (size_t k = 0; k < k_main; k += V) {
                vf y0 = vf_load(b0 + k), y1 = vf_load(b1 + k), x = vf_load(a0 + k);
                s00 = vf_mac(s00, x, y0);
                s01 = vf_mac(s01, x, y1);
                x = vf_load(a1 + k);
                s10 = vf_mac(s10, x, y0);
                s11 = vf_mac(s11, x, y1);
                x = vf_load(a2 + k);
                s20 = vf_mac(s20, x, y0);
                s21 = vf_mac(s21, x, y1);
                x = vf_load(a3 + k);
                s30 = vf_mac(s30, x, y0);
                s31 = vf_mac(s31, x, y1);
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
#endif
    /* Edges: the rows below i_main, and the columns from j_main on. */
    for (size_t i = 0; i < dim_i; ++i)
        for (size_t j = i < i_main ? j_main : 0; j < dim_j; ++j) {
            const float *ai = a + i * lda, *bj = b + j * ldb;
            vf s = vf_splat(0.0f);
            for (size_t k = 0; k < k_main; k += V)
                s = vf_mac(s, vf_load(ai + k), vf_load(bj + k));
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
#endif /* vector units */
#endif
#else
typedef int ef_portable_backend_not_selected;
#endif
