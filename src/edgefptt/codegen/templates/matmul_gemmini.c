/* Gemmini backend: one tiled_matmul_auto call per matmul of the workload (not built here).
 *
 * Build for a Chipyard SoC with -DEDGEFPTT_GEMMINI and Gemmini's headers on the include path
 * (gemmini-rocc-tests/include). elem_t must match the storage type: float on the FP32 config,
 * the 16-bit bf16 pattern on the seed paper's BF16 config (accumulator bf16 too, so that D
 * and C share one type and accumulating into C is legal). */
#ifdef EDGEFPTT_GEMMINI
#include "include/gemmini.h"

#include "matmul.h"

void ef_matmul_backend(size_t dim_i, size_t dim_j, size_t dim_k, const ef_elem *a,
                       const ef_elem *b, const ef_elem *d, ef_elem *c, size_t stride_a,
                       size_t stride_b, size_t stride_d, size_t stride_c, float a_scale,
                       bool repeating_bias, bool transpose_a, bool transpose_b)
{
    /* WS dataflow: the workload never transposes A and B together (WS cannot). D is in the
     * accumulator type (low_D false); C is written in the input type (full_C false). */
    tiled_matmul_auto(dim_i, dim_j, dim_k, (const elem_t *)a, (const elem_t *)b,
                      (const void *)d, (void *)c, stride_a, stride_b, stride_d, stride_c,
                      (scale_t)a_scale, MVIN_SCALE_IDENTITY, ACC_SCALE_IDENTITY,
                      NO_ACTIVATION, ACC_SCALE_IDENTITY, 0, repeating_bias, transpose_a,
                      transpose_b, false, false, 0, WS);
    gemmini_fence(); /* the next kernel on the core reads C */
}
#else
/* ISO C forbids an empty translation unit. */
typedef int ef_gemmini_backend_not_selected;
#endif
