/* A stand-in for Gemmini's include/gemmini.h (tests/test_gemmini.py): the types of a BF16
 * config, with the accumulator's width chosen by MOCK_ACC_BITS (32: Gemmini's stock BF16
 * configs, 16: a bf16 accumulator), and a tiled_matmul_auto that records its call. */
#ifndef MOCK_GEMMINI_H
#define MOCK_GEMMINI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint16_t elem_t;
#define ELEM_T_IS_LOWPREC_FLOAT
#define ELEM_T_IS_FLOAT
#define ELEM_T_EXP_BITS 8
#define ELEM_T_SIG_BITS 8
#define ACC_T_EXP_BITS 8
#if MOCK_ACC_BITS == 16
typedef uint16_t acc_t;
#define ACC_T_SIG_BITS 8
#else
typedef float acc_t;
#define ACC_T_SIG_BITS 24
#endif
typedef float scale_t;
typedef float scale_acc_t;
typedef float acc_scale_t;
#define MVIN_SCALE_IDENTITY 1.0
#define ACC_SCALE_IDENTITY 1.0
#define NO_ACTIVATION 0
enum tiled_matmul_type_t { OS, WS, CPU };

extern int mock_flushes, mock_calls, mock_low_d, mock_commands_before_flush;
#define gemmini_flush(skip) ((void)(skip), mock_flushes++)
#define gemmini_fence() ((void)0)

static inline void tiled_matmul_auto(size_t dim_I, size_t dim_J, size_t dim_K, const elem_t *A,
                                     const elem_t *B, const void *D, void *C, size_t stride_A,
                                     size_t stride_B, size_t stride_D, size_t stride_C,
                                     scale_t A_scale_factor, scale_t B_scale_factor,
                                     scale_acc_t D_scale_factor, int act, acc_scale_t scale,
                                     acc_scale_t bert_scale, bool repeating_bias,
                                     bool transpose_A, bool transpose_B, bool full_C, bool low_D,
                                     uint8_t weightA, enum tiled_matmul_type_t type)
{
    (void)dim_I, (void)dim_J, (void)dim_K, (void)A, (void)B, (void)D, (void)C;
    (void)stride_A, (void)stride_B, (void)stride_D, (void)stride_C, (void)A_scale_factor;
    (void)B_scale_factor, (void)D_scale_factor, (void)act, (void)scale, (void)bert_scale;
    (void)repeating_bias, (void)transpose_A, (void)transpose_B, (void)full_C, (void)weightA;
    (void)type;
    if (mock_flushes == 0)
        mock_commands_before_flush++;
    mock_calls++;
    mock_low_d = low_D;
}
#endif
