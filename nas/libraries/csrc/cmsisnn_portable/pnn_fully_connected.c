/*
 * pnn_fully_connected.c -- arm_fully_connected_s8 (per-tensor quantization).
 * Each batch row is one lhs row of the shared GEMM kernel; the weight matrix is
 * [C_OUT][accum_depth] (TFLite layout), filter_offset is honoured.
 */
#include "pnn_support.h"

arm_cmsis_nn_status arm_fully_connected_s8(const cmsis_nn_context *ctx,
                                           const cmsis_nn_fc_params *fc_params,
                                           const cmsis_nn_per_tensor_quant_params *quant_params,
                                           const cmsis_nn_dims *input_dims,
                                           const int8_t *input_data,
                                           const cmsis_nn_dims *filter_dims,
                                           const int8_t *filter_data,
                                           const cmsis_nn_dims *bias_dims,
                                           const int32_t *bias_data,
                                           const cmsis_nn_dims *output_dims,
                                           int8_t *output_data)
{
    (void)ctx;
    (void)bias_dims;
    const int32_t depth = filter_dims->n;
    const int32_t out_c = output_dims->c;
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        /* one batch row at a time: the weight rows are paired inside the GEMM */
        pnn_gemm_s8(input_data,
                    depth,
                    1,
                    filter_data,
                    out_c,
                    depth,
                    fc_params->input_offset,
                    fc_params->filter_offset,
                    bias_data,
                    &quant_params->multiplier,
                    &quant_params->shift,
                    0,
                    fc_params->output_offset,
                    fc_params->activation.min,
                    fc_params->activation.max,
                    output_data,
                    out_c);
        input_data += depth;
        output_data += out_c;
    }
    return ARM_CMSIS_NN_SUCCESS;
}
