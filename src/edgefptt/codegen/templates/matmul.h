/* The matmul backend interface: Gemmini's tiled matmul, restricted to what the pass uses.
 *
 *   C (dim_i x dim_j) = A' (dim_i x dim_k) @ B' (dim_k x dim_j) + D'
 *   A' = a_scale * (transpose_a ? A^T : A), B' = (transpose_b ? B^T : B),
 *   D' = 0 (d == NULL), one row repeated (repeating_bias) or the full matrix D.
 * Strides are in elements. d may equal c (accumulate into C). The portable backend
 * (matmul_portable.c) is the default; -DEDGEFPTT_GEMMINI selects matmul_gemmini.c. */
#ifndef EDGEFPTT_MATMUL_H
#define EDGEFPTT_MATMUL_H

#include "runtime.h"

void ef_matmul_backend(size_t dim_i, size_t dim_j, size_t dim_k, const ef_elem *a,
                       const ef_elem *b, const ef_elem *d, ef_elem *c, size_t stride_a,
                       size_t stride_b, size_t stride_d, size_t stride_c, float a_scale,
                       bool repeating_bias, bool transpose_a, bool transpose_b);

#endif
