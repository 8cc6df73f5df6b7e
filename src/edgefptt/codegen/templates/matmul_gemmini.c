/* Gemmini backend: one tiled_matmul_auto call per matmul of the workload.
 *
 * Built by `make gemmini GEMMINI_CONFIG=...` (-DEDGEFPTT_GEMMINI, GNU C: gemmini.h uses asm,
 * typeof and statement expressions) with Gemmini's headers as system headers: the
 * gemmini-rocc-tests folder (include/gemmini.h) and the folder of the configuration's
 * include/gemmini_params.h. Gemmini's types must match this export's storage type, which the
 * checks below enforce at compile time:
 *   fp32 export: elem_t float, acc_t float (Gemmini's FP32 configs);
 *   bf16 export: elem_t the 16-bit bf16 pattern, and acc_t either fp32 (Gemmini's stock BF16
 *   configs: D, in bf16 like all our buffers, is moved in with low_D) or bf16 (the seed
 *   paper's config: D and C share the type, low_D off).
 * One Gemmini per core: the build runs one thread (ef_matmul_backend is not reentrant). */
#ifdef EDGEFPTT_GEMMINI
#include "include/gemmini.h"

#include "matmul.h"

#if EDGEFPTT_BF16
#if !defined(ELEM_T_IS_LOWPREC_FLOAT) || ELEM_T_EXP_BITS != 8 || ELEM_T_SIG_BITS != 8
#error "edgefptt: this bf16 export needs a BF16 Gemmini (elem_t bf16); gemmini_params.h is not"
#endif
#if !defined(ACC_T_EXP_BITS) || ACC_T_EXP_BITS != 8 || \
    (ACC_T_SIG_BITS != 8 && ACC_T_SIG_BITS != 24)
#error "edgefptt: this bf16 export needs a Gemmini acc_t of fp32 or bf16"
#endif
_Static_assert(sizeof(elem_t) == sizeof(ef_elem) && (sizeof(acc_t) == 2 || sizeof(acc_t) == 4),
               "edgefptt: this bf16 export needs a 16-bit elem_t and an fp32 or bf16 acc_t");
#else
_Static_assert(_Generic((elem_t)0, float: 1, default: 0) &&
                   _Generic((acc_t)0, float: 1, default: 0),
               "edgefptt: this fp32 export needs Gemmini elem_t and acc_t to be float (an FP32 "
               "gemmini_params.h)");
#endif

/* D is one of our buffers (ef_elem): with a wider accumulator it is moved in as elem_t. */
#define EF_GEMMINI_LOW_D (sizeof(acc_t) != sizeof(elem_t))

static bool ef_gemmini_ready;

void ef_matmul_backend(size_t dim_i, size_t dim_j, size_t dim_k, const ef_elem *a,
                       const ef_elem *b, const ef_elem *d, ef_elem *c, size_t stride_a,
                       size_t stride_b, size_t stride_d, size_t stride_c, float a_scale,
                       bool repeating_bias, bool transpose_a, bool transpose_b)
{
    if (!ef_gemmini_ready) {
        gemmini_flush(0); /* as Gemmini's own tests do before the first command */
        ef_gemmini_ready = true;
    }
    /* WS dataflow: the workload never transposes A and B together (WS cannot). C is written
     * in the input type (full_C false). */
    tiled_matmul_auto(dim_i, dim_j, dim_k, (const elem_t *)a, (const elem_t *)b,
                      (const void *)d, (void *)c, stride_a, stride_b, stride_d, stride_c,
                      (scale_t)a_scale, MVIN_SCALE_IDENTITY, ACC_SCALE_IDENTITY,
                      NO_ACTIVATION, ACC_SCALE_IDENTITY, 0, repeating_bias, transpose_a,
                      transpose_b, false, EF_GEMMINI_LOW_D, 0, WS);
    gemmini_fence(); /* the next kernel on the core reads C */
}
#else
/* ISO C forbids an empty translation unit. */
typedef int ef_gemmini_backend_not_selected;
#endif
