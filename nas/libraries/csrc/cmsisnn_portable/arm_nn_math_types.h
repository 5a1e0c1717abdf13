/*
 * arm_nn_math_types.h -- portable counterpart of the CMSIS-NN header of the
 * same name: feature macros and saturation limits.
 *
 * ARM_MATH_DSP is defined when the compiler targets a core with the Armv7E-M
 * DSP extension (e.g. -mcpu=cortex-m4); the kernels then use the SIMD code
 * path, otherwise plain C.  Both paths give identical results.
 */
#ifndef ARM_NN_MATH_TYPES_H
#define ARM_NN_MATH_TYPES_H

#include <limits.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)
#ifndef ARM_MATH_DSP
#define ARM_MATH_DSP 1
#endif
#endif

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#ifndef ARM_MATH_MVEI
#define ARM_MATH_MVEI 1
#endif
#endif

#define NN_Q31_MAX ((int32_t)(0x7FFFFFFFL))
#define NN_Q15_MAX ((int16_t)(0x7FFF))
#define NN_Q7_MAX ((int8_t)(0x7F))
#define NN_Q31_MIN ((int32_t)(-0x7FFFFFFFL - 1))
#define NN_Q15_MIN ((int16_t)(-0x8000))
#define NN_Q7_MIN ((int8_t)(-0x80))

#ifdef __cplusplus
}
#endif

#endif /* ARM_NN_MATH_TYPES_H */
