/*
 * arm_nnfunctions.h -- portable C99 implementation of the subset of the
 * CMSIS-NN v7 int8 API that an audio CNN needs.
 *
 * Names, struct types and signatures are those of CMSIS-NN v7.0.0 so that code
 * written against this header also builds against a real CMSIS-NN checkout
 * (CMSIS_NN_PATH/Include plus the .c files under CMSIS_NN_PATH/Source).  The
 * arithmetic is
 * bit-exact with CMSIS-NN's default (double rounding) requantization:
 *
 *   acc  = bias[c] + sum((x + input_offset) * w)        (padded taps add 0)
 *   y    = clamp(requantize(acc, mult[c], shift[c]) + output_offset, act.min, act.max)
 *
 * Tensor layouts: activations NHWC; conv filter OHWI ([C_OUT, KH, KW, C_IN]);
 * depthwise filter [1, KH, KW, C_OUT] with C_OUT = C_IN * ch_mult and output
 * channel index ic * ch_mult + m; fully connected filter [C_OUT][accum_depth].
 * Only top/left padding is passed; bottom/right padding is implied by the
 * output dimensions.
 *
 * Scratch buffers: the plain *_get_buffer_size() functions answer for the
 * build target (DSP sizes when ARM_MATH_DSP, pure-C sizes otherwise), the
 * *_get_buffer_size_dsp() variants always give the Cortex-M4 (DSP) size of the
 * real library and are meant for host-side tools.  These kernels never need
 * more scratch than the real library asks for.
 */
#ifndef ARM_NNFUNCTIONS_H
#define ARM_NNFUNCTIONS_H

#include "arm_nn_math_types.h"
#include "arm_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ conv */

/** Convolution entry point: dispatches to the 1x1 kernels when pad 0, 1x1,
 *  dilation 1 and input_dims->c == filter_dims->c; to arm_convolve_1_x_n_s8
 *  for H=1 inputs with 1xN filters and (stride.w * C_IN) % 4 == 0; otherwise
 *  to arm_convolve_s8 (which needs ctx->buf != NULL). */
arm_cmsis_nn_status arm_convolve_wrapper_s8(const cmsis_nn_context *ctx,
                                            const cmsis_nn_conv_params *conv_params,
                                            const cmsis_nn_per_channel_quant_params *quant_params,
                                            const cmsis_nn_dims *input_dims,
                                            const int8_t *input_data,
                                            const cmsis_nn_dims *filter_dims,
                                            const int8_t *filter_data,
                                            const cmsis_nn_dims *bias_dims,
                                            const int32_t *bias_data,
                                            const cmsis_nn_dims *output_dims,
                                            int8_t *output_data);

/** Scratch bytes for arm_convolve_wrapper_s8 on the build target. */
int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                                const cmsis_nn_dims *input_dims,
                                                const cmsis_nn_dims *filter_dims,
                                                const cmsis_nn_dims *output_dims);

/** Scratch bytes for arm_convolve_wrapper_s8 on a DSP core (Cortex-M4/M7, GCC). */
int32_t arm_convolve_wrapper_s8_get_buffer_size_dsp(const cmsis_nn_conv_params *conv_params,
                                                    const cmsis_nn_dims *input_dims,
                                                    const cmsis_nn_dims *filter_dims,
                                                    const cmsis_nn_dims *output_dims);

/** Generic (grouped) convolution.  upscale_dims must be NULL (only used by
 *  CMSIS-NN's transpose convolution).  ARG_ERROR if ctx->buf == NULL or the
 *  group count does not divide the channel counts. */
arm_cmsis_nn_status arm_convolve_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_conv_params *conv_params,
                                    const cmsis_nn_per_channel_quant_params *quant_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const int8_t *filter_data,
                                    const cmsis_nn_dims *bias_dims,
                                    const int32_t *bias_data,
                                    const cmsis_nn_dims *upscale_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data);

/** Scratch bytes for arm_convolve_s8: 4 * ceil4(KH * KW * C_IN). */
int32_t arm_convolve_s8_get_buffer_size(const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims);

/** 1x1 convolution, pad 0 and stride 1 required (else ARG_ERROR). */
arm_cmsis_nn_status arm_convolve_1x1_s8_fast(const cmsis_nn_context *ctx,
                                             const cmsis_nn_conv_params *conv_params,
                                             const cmsis_nn_per_channel_quant_params *quant_params,
                                             const cmsis_nn_dims *input_dims,
                                             const int8_t *input_data,
                                             const cmsis_nn_dims *filter_dims,
                                             const int8_t *filter_data,
                                             const cmsis_nn_dims *bias_dims,
                                             const int32_t *bias_data,
                                             const cmsis_nn_dims *output_dims,
                                             int8_t *output_data);

/** Scratch bytes for arm_convolve_1x1_s8_fast (0 with GCC). */
int32_t arm_convolve_1x1_s8_fast_get_buffer_size(const cmsis_nn_dims *input_dims);

/** 1x1 convolution with any stride, pad 0 required (else ARG_ERROR). */
arm_cmsis_nn_status arm_convolve_1x1_s8(const cmsis_nn_context *ctx,
                                        const cmsis_nn_conv_params *conv_params,
                                        const cmsis_nn_per_channel_quant_params *quant_params,
                                        const cmsis_nn_dims *input_dims,
                                        const int8_t *input_data,
                                        const cmsis_nn_dims *filter_dims,
                                        const int8_t *filter_data,
                                        const cmsis_nn_dims *bias_dims,
                                        const int32_t *bias_data,
                                        const cmsis_nn_dims *output_dims,
                                        int8_t *output_data);

/** Convolution of an H=1 input with a 1xN filter (same result as arm_convolve_s8). */
arm_cmsis_nn_status arm_convolve_1_x_n_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_conv_params *conv_params,
                                          const cmsis_nn_per_channel_quant_params *quant_params,
                                          const cmsis_nn_dims *input_dims,
                                          const int8_t *input_data,
                                          const cmsis_nn_dims *filter_dims,
                                          const int8_t *filter_data,
                                          const cmsis_nn_dims *bias_dims,
                                          const int32_t *bias_data,
                                          const cmsis_nn_dims *output_dims,
                                          int8_t *output_data);

/** Scratch bytes for arm_convolve_1_x_n_s8. */
int32_t arm_convolve_1_x_n_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                              const cmsis_nn_dims *input_dims,
                                              const cmsis_nn_dims *filter_dims,
                                              const cmsis_nn_dims *output_dims);

/* ------------------------------------------------------------- depthwise */

/** Depthwise entry point: ch_mult 1, batch 1, dilation 1 goes to the 3x3
 *  kernel (pad <= 1) or the "opt" kernel; everything else to the generic one. */
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx,
                                                  const cmsis_nn_dw_conv_params *dw_conv_params,
                                                  const cmsis_nn_per_channel_quant_params *quant_params,
                                                  const cmsis_nn_dims *input_dims,
                                                  const int8_t *input_data,
                                                  const cmsis_nn_dims *filter_dims,
                                                  const int8_t *filter_data,
                                                  const cmsis_nn_dims *bias_dims,
                                                  const int32_t *bias_data,
                                                  const cmsis_nn_dims *output_dims,
                                                  int8_t *output_data);

/** Scratch bytes for arm_depthwise_conv_wrapper_s8 on the build target. */
int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                      const cmsis_nn_dims *input_dims,
                                                      const cmsis_nn_dims *filter_dims,
                                                      const cmsis_nn_dims *output_dims);

/** Scratch bytes for arm_depthwise_conv_wrapper_s8 on a DSP core:
 *  2 * C_IN * KH * KW for ch_mult 1 unless 3x3 with pad <= 1, else 0. */
int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                          const cmsis_nn_dims *input_dims,
                                                          const cmsis_nn_dims *filter_dims,
                                                          const cmsis_nn_dims *output_dims);

/** Generic depthwise convolution (any ch_mult, dilation, batch). */
arm_cmsis_nn_status arm_depthwise_conv_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_dw_conv_params *dw_conv_params,
                                          const cmsis_nn_per_channel_quant_params *quant_params,
                                          const cmsis_nn_dims *input_dims,
                                          const int8_t *input_data,
                                          const cmsis_nn_dims *filter_dims,
                                          const int8_t *filter_data,
                                          const cmsis_nn_dims *bias_dims,
                                          const int32_t *bias_data,
                                          const cmsis_nn_dims *output_dims,
                                          int8_t *output_data);

/** Depthwise 3x3, in_ch == out_ch, pad.w <= 1 (else ARG_ERROR). */
arm_cmsis_nn_status arm_depthwise_conv_3x3_s8(const cmsis_nn_context *ctx,
                                              const cmsis_nn_dw_conv_params *dw_conv_params,
                                              const cmsis_nn_per_channel_quant_params *quant_params,
                                              const cmsis_nn_dims *input_dims,
                                              const int8_t *input_data,
                                              const cmsis_nn_dims *filter_dims,
                                              const int8_t *filter_data,
                                              const cmsis_nn_dims *bias_dims,
                                              const int32_t *bias_data,
                                              const cmsis_nn_dims *output_dims,
                                              int8_t *output_data);

/** Depthwise with ch_mult 1 (in_ch == out_ch, else ARG_ERROR); on a DSP
 *  target also ARG_ERROR when ctx->buf == NULL and a buffer is required. */
arm_cmsis_nn_status arm_depthwise_conv_s8_opt(const cmsis_nn_context *ctx,
                                              const cmsis_nn_dw_conv_params *dw_conv_params,
                                              const cmsis_nn_per_channel_quant_params *quant_params,
                                              const cmsis_nn_dims *input_dims,
                                              const int8_t *input_data,
                                              const cmsis_nn_dims *filter_dims,
                                              const int8_t *filter_data,
                                              const cmsis_nn_dims *bias_dims,
                                              const int32_t *bias_data,
                                              const cmsis_nn_dims *output_dims,
                                              int8_t *output_data);

/** Scratch bytes for arm_depthwise_conv_s8_opt on the build target. */
int32_t arm_depthwise_conv_s8_opt_get_buffer_size(const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims);

/* -------------------------------------------------------- fully connected */

/** Fully connected, per-tensor quantization.  filter_dims->n = accumulation
 *  depth, output_dims->c = output features, input_dims->n = batches. */
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
                                           int8_t *output_data);

/** Scratch bytes for arm_fully_connected_s8 on the build target (0). */
int32_t arm_fully_connected_s8_get_buffer_size(const cmsis_nn_dims *filter_dims);

/** Scratch bytes for arm_fully_connected_s8 on a DSP core (0). */
int32_t arm_fully_connected_s8_get_buffer_size_dsp(const cmsis_nn_dims *filter_dims);

/* ---------------------------------------------------------------- pooling */

/** Average pooling: sum of in-bounds taps divided by their count, rounded half
 *  away from zero, then clamped.  ARG_ERROR if input_dims->n < 1, if a window
 *  has no in-bounds tap, or (DSP target) if ctx->buf == NULL. */
arm_cmsis_nn_status arm_avgpool_s8(const cmsis_nn_context *ctx,
                                   const cmsis_nn_pool_params *pool_params,
                                   const cmsis_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const cmsis_nn_dims *filter_dims,
                                   const cmsis_nn_dims *output_dims,
                                   int8_t *output_data);

/** Scratch bytes for arm_avgpool_s8 on the build target. */
int32_t arm_avgpool_s8_get_buffer_size(const int dim_dst_width, const int ch_src);

/** Scratch bytes for arm_avgpool_s8 on a DSP core: 4 * ch_src. */
int32_t arm_avgpool_s8_get_buffer_size_dsp(const int dim_dst_width, const int ch_src);

/** Max pooling over in-bounds taps, then clamp.  ARG_ERROR if input_dims->n < 1.
 *  Input and output must not overlap. */
arm_cmsis_nn_status arm_max_pool_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_pool_params *pool_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data);

/* ---------------------------------------------------------------- softmax */

/** int8 softmax over rows (output scale 1/256, zero point -128), bit-exact with
 *  TFLM's fixed-point reference.  mult/shift/diff_min as computed by TFLM's
 *  CalculateSoftmaxParams (shift is a left shift in [0, 31]). */
void arm_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output);

/* ---------------------------------------------------------------- element-wise */

/** int8 element-wise add of two tensors of block_size elements (TFLite int8 Add): each input offset,
 *  shifted left by left_shift and rescaled by its multiplier/shift, the sum rescaled to the output,
 *  offset and clamped.  The output may alias either input. */
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
                                           const int32_t block_size);

#ifdef __cplusplus
}
#endif

#endif /* ARM_NNFUNCTIONS_H */
