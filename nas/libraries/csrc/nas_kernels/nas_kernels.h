/*
 * nas_kernels.h -- int8 kernels of the nas project for the layers CMSIS-NN handles poorly.
 *
 * Each kernel has the argument list of the CMSIS-NN v7 call it replaces (same structs, same
 * requantisation as arm_nn_requantize, same offsets and activation clamp, bit-exact), so the
 * generated code calls it the same way, and a *_get_buffer_size function for its scratch buffer.
 * They build against either the real CMSIS-NN headers or the portable ones (only the
 * arm_nn_types.h structs are used). On a core with the DSP extension (__ARM_FEATURE_DSP: SMLAD,
 * SMMULR) they run the packed int16 paths; elsewhere the same loops in plain C.
 *
 * nas_convolve_c1_s8       convolution of a 1-channel input (the spectrogram layer): any kernel,
 *                          stride, top/left padding; dilation 1, batch 1.
 * nas_depthwise_conv_s8    depthwise convolution, channel multiplier 1: any kernel, stride,
 *                          top/left padding; dilation 1, batch 1.
 * nas_convolve_1x1_s8      pointwise convolution: 1x1 kernel, no padding, any stride; batch 1.
 *
 * The first two work on "planes": one input channel widened to int16 (input offset added,
 * padding = 0) in a ring of kernel-height rows, so two horizontal taps are one 32-bit word and one
 * SMLAD; the weights are widened (and doubled: see nas_kernels_internal.h) once per call. The
 * pointwise one widens (and doubles) each pixel's input channels once for all output channels.
 */
#ifndef NAS_KERNELS_H
#define NAS_KERNELS_H

#include <stdint.h>

#include "arm_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

int32_t nas_convolve_c1_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                           const cmsis_nn_dims *input_dims,
                                           const cmsis_nn_dims *filter_dims,
                                           const cmsis_nn_dims *output_dims);

arm_cmsis_nn_status nas_convolve_c1_s8(const cmsis_nn_context *ctx,
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

int32_t nas_depthwise_conv_s8_get_buffer_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                              const cmsis_nn_dims *input_dims,
                                              const cmsis_nn_dims *filter_dims,
                                              const cmsis_nn_dims *output_dims);

arm_cmsis_nn_status nas_depthwise_conv_s8(const cmsis_nn_context *ctx,
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

int32_t nas_convolve_1x1_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                            const cmsis_nn_dims *input_dims,
                                            const cmsis_nn_dims *filter_dims,
                                            const cmsis_nn_dims *output_dims);

arm_cmsis_nn_status nas_convolve_1x1_s8(const cmsis_nn_context *ctx,
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

#ifdef __cplusplus
}
#endif

#endif /* NAS_KERNELS_H */
