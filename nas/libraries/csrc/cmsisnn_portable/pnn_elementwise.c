/*
 * pnn_elementwise.c -- arm_elementwise_add_s8, bit-exact with CMSIS-NN v7 / TFLite's int8 Add.
 *
 * Per element:
 *   a = requantize((x1 + in1_offset) << left_shift, in1_mult, in1_shift)
 *   b = requantize((x2 + in2_offset) << left_shift, in2_mult, in2_shift)
 *   y = clamp(requantize(a + b, out_mult, out_shift) + out_offset, act_min, act_max)
 * The inputs and the output may be the same buffer (each element is read before it is written).
 */
#include "pnn_support.h"

arm_cmsis_nn_status arm_elementwise_add_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_1_mult,
                                           const int32_t input_1_shift,
                                           const int32_t input_2_offset,
                                           const int32_t input_2_mult,
                                           const int32_t input_2_shift,
                                           const int32_t left_shift,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size)
{
    for (int32_t i = 0; i < block_size; i++)
    {
        const int32_t a = pnn_requantize((int32_t)((uint32_t)(input_1_vect[i] + input_1_offset) << left_shift),
                                         input_1_mult, input_1_shift);
        const int32_t b = pnn_requantize((int32_t)((uint32_t)(input_2_vect[i] + input_2_offset) << left_shift),
                                         input_2_mult, input_2_shift);
        output[i] = pnn_finish(a + b, out_mult, out_shift, out_offset, out_activation_min, out_activation_max);
    }
    return ARM_CMSIS_NN_SUCCESS;
}
