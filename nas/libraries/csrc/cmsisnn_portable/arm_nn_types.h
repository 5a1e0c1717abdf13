/*
 * arm_nn_types.h -- portable re-implementation (from scratch) of the public
 * CMSIS-NN v7 type names used by the int8 kernels of this project.
 *
 * The struct layouts (field names, types and order) follow the CMSIS-NN v7
 * API so that generated code compiles unchanged against either these files or
 * a real CMSIS-NN checkout.  The include guard is the one CMSIS-NN uses, so the
 * two can never be defined twice in one translation unit.
 *
 * Offsets convention used by TFLM (and by this project's exporter):
 *   input_offset  = -input_zero_point
 *   output_offset = +output_zero_point
 *   filter_offset = -filter_zero_point (0 for symmetric int8 weights)
 */
#ifndef ARM_NN_TYPES_H
#define ARM_NN_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Status returned by every kernel that can fail. */
typedef enum
{
    ARM_CMSIS_NN_SUCCESS = 0,
    ARM_CMSIS_NN_ARG_ERROR = -1,
    ARM_CMSIS_NN_NO_IMPL_ERROR = -2,
    ARM_CMSIS_NN_FAILURE = -3
} arm_cmsis_nn_status;

/** Width/height pair (width first, as in CMSIS-NN). */
typedef struct
{
    int32_t w;
    int32_t h;
} cmsis_nn_tile;

/** Scratch buffer handed to a kernel; size in bytes. */
typedef struct
{
    void *buf;
    int32_t size;
} cmsis_nn_context;

/** Tensor shape: n = batch (or output channels for conv filters), h, w, c. */
typedef struct
{
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} cmsis_nn_dims;

/** Per output channel requantization multiplier and shift arrays. */
typedef struct
{
    int32_t *multiplier;
    int32_t *shift;
} cmsis_nn_per_channel_quant_params;

/** Single requantization multiplier and shift. */
typedef struct
{
    int32_t multiplier;
    int32_t shift;
} cmsis_nn_per_tensor_quant_params;

/** Per-tensor or per-channel requantization parameters. */
typedef struct
{
    int32_t *multiplier;
    int32_t *shift;
    int32_t is_per_channel;
} cmsis_nn_quant_params;

/** Output clamp range, applied after the output offset has been added. */
typedef struct
{
    int32_t min;
    int32_t max;
} cmsis_nn_activation;

/** Convolution parameters; padding holds the top (h) and left (w) pads only. */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_tile dilation;
    cmsis_nn_activation activation;
} cmsis_nn_conv_params;

/** Depthwise convolution parameters; out_ch = ch_mult * in_ch. */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    int32_t ch_mult;
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_tile dilation;
    cmsis_nn_activation activation;
} cmsis_nn_dw_conv_params;

/** Pooling parameters. */
typedef struct
{
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_activation activation;
} cmsis_nn_pool_params;

/** Fully connected parameters. */
typedef struct
{
    int32_t input_offset;
    int32_t filter_offset;
    int32_t output_offset;
    cmsis_nn_activation activation;
} cmsis_nn_fc_params;

#ifdef __cplusplus
}
#endif

#endif /* ARM_NN_TYPES_H */
