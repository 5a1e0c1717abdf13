/*
 * nas_dsp_intrinsics.h -- the Cortex-M SIMD intrinsics CMSIS-DSP's q15 FFT uses (ARM_MATH_DSP), for
 * builds without CMSIS-Core.
 *
 * The fixed-point front-end compiles CMSIS-DSP's q15 FFT with ARM_MATH_DSP on every core, so that
 * every build computes the same numbers (the intrinsic version of the FFT rounds differently from the
 * portable C one) and the training features (nas.arch.q15fft) match all of them. nas_frontend_dsp.c
 * and nas_frontend.c include this file after defining __GNUC_PYTHON__ (CMSIS-DSP without CMSIS-Core)
 * and ARM_MATH_DSP:
 *   - on cores with the DSP extension (__ARM_FEATURE_DSP, e.g. Cortex-M4/M7/M33) each intrinsic is
 *     the instruction, through the ACLE functions of <arm_acle.h>;
 *   - elsewhere (Cortex-M0+/M3, a PC) each is C with the instruction's exact result: 16-bit lanes
 *     (low halfword first), saturating (Q), halving (SH) and dual multiply-accumulate forms, 32-bit
 *     sums wrapping like the register.
 * __CLZ, __SSAT, __USAT and __ROR come from CMSIS-DSP's own dsp/none.h under __GNUC_PYTHON__.
 * Names, argument and result types are CMSIS-Core's (cmsis_gcc.h), so CMSIS-DSP compiles unchanged.
 */
#ifndef NAS_DSP_INTRINSICS_H
#define NAS_DSP_INTRINSICS_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)

#include <arm_acle.h>

/* PKHBT: low halfword of a, high halfword of (b << shift); the instruction (ACLE has no function) */
#define __PKHBT(a, b, shift) __extension__({ \
    uint32_t nas_r_, nas_a_ = (uint32_t)(a), nas_b_ = (uint32_t)(b); \
    __asm__("pkhbt %0, %1, %2, lsl %3" : "=r"(nas_r_) : "r"(nas_a_), "r"(nas_b_), "I"(shift)); \
    nas_r_; })

#define NAS_SIMD2(name, acle) \
    static inline uint32_t name(uint32_t a, uint32_t b) { return (uint32_t)acle((int16x2_t)a, (int16x2_t)b); }
#define NAS_DUAL_ACC(name, acle) \
    static inline uint32_t name(uint32_t a, uint32_t b, uint32_t acc) \
    { return (uint32_t)acle((int16x2_t)a, (int16x2_t)b, (int32_t)acc); }

NAS_SIMD2(__QADD16, __qadd16)
NAS_SIMD2(__QSUB16, __qsub16)
NAS_SIMD2(__SHADD16, __shadd16)
NAS_SIMD2(__SHSUB16, __shsub16)
NAS_SIMD2(__QASX, __qasx)
NAS_SIMD2(__QSAX, __qsax)
NAS_SIMD2(__SHASX, __shasx)
NAS_SIMD2(__SHSAX, __shsax)
NAS_SIMD2(__SMUAD, __smuad)
NAS_SIMD2(__SMUADX, __smuadx)
NAS_SIMD2(__SMUSD, __smusd)
NAS_SIMD2(__SMUSDX, __smusdx)
NAS_DUAL_ACC(__SMLAD, __smlad)
NAS_DUAL_ACC(__SMLADX, __smladx)
NAS_DUAL_ACC(__SMLSDX, __smlsdx)

static inline int32_t __QADD(int32_t a, int32_t b) { return __qadd(a, b); }
static inline int32_t __QSUB(int32_t a, int32_t b) { return __qsub(a, b); }
static inline uint64_t __SMLALD(uint32_t a, uint32_t b, uint64_t acc)
{ return (uint64_t)__smlald((int16x2_t)a, (int16x2_t)b, (int64_t)acc); }
static inline uint64_t __SMLALDX(uint32_t a, uint32_t b, uint64_t acc)
{ return (uint64_t)__smlaldx((int16x2_t)a, (int16x2_t)b, (int64_t)acc); }

#else

#define __PKHBT(a, b, shift) ((((uint32_t)(a)) & 0x0000FFFFu) | ((((uint32_t)(b)) << (shift)) & 0xFFFF0000u))

static inline int32_t nas_lo(uint32_t x) { return (int16_t)(x & 0xFFFFu); }
static inline int32_t nas_hi(uint32_t x) { return (int16_t)(x >> 16); }
static inline uint32_t nas_pack(int32_t lo, int32_t hi)
{
    return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16);
}
static inline int32_t nas_sat16(int32_t v) { return v > 32767 ? 32767 : (v < -32768 ? -32768 : v); }

static inline uint32_t __QADD16(uint32_t a, uint32_t b)
{ return nas_pack(nas_sat16(nas_lo(a) + nas_lo(b)), nas_sat16(nas_hi(a) + nas_hi(b))); }
static inline uint32_t __QSUB16(uint32_t a, uint32_t b)
{ return nas_pack(nas_sat16(nas_lo(a) - nas_lo(b)), nas_sat16(nas_hi(a) - nas_hi(b))); }
static inline uint32_t __SHADD16(uint32_t a, uint32_t b)
{ return nas_pack((nas_lo(a) + nas_lo(b)) >> 1, (nas_hi(a) + nas_hi(b)) >> 1); }
static inline uint32_t __SHSUB16(uint32_t a, uint32_t b)
{ return nas_pack((nas_lo(a) - nas_lo(b)) >> 1, (nas_hi(a) - nas_hi(b)) >> 1); }
static inline uint32_t __QASX(uint32_t a, uint32_t b)
{ return nas_pack(nas_sat16(nas_lo(a) - nas_hi(b)), nas_sat16(nas_hi(a) + nas_lo(b))); }
static inline uint32_t __QSAX(uint32_t a, uint32_t b)
{ return nas_pack(nas_sat16(nas_lo(a) + nas_hi(b)), nas_sat16(nas_hi(a) - nas_lo(b))); }
static inline uint32_t __SHASX(uint32_t a, uint32_t b)
{ return nas_pack((nas_lo(a) - nas_hi(b)) >> 1, (nas_hi(a) + nas_lo(b)) >> 1); }
static inline uint32_t __SHSAX(uint32_t a, uint32_t b)
{ return nas_pack((nas_lo(a) + nas_hi(b)) >> 1, (nas_hi(a) - nas_lo(b)) >> 1); }

/* dual 16x16 multiplies: each product fits an int32; their sum wraps at 32 bits like the register */
static inline uint32_t __SMUAD(uint32_t a, uint32_t b)
{ return (uint32_t)(nas_lo(a) * nas_lo(b)) + (uint32_t)(nas_hi(a) * nas_hi(b)); }
static inline uint32_t __SMUADX(uint32_t a, uint32_t b)
{ return (uint32_t)(nas_lo(a) * nas_hi(b)) + (uint32_t)(nas_hi(a) * nas_lo(b)); }
static inline uint32_t __SMUSD(uint32_t a, uint32_t b)
{ return (uint32_t)(nas_lo(a) * nas_lo(b)) - (uint32_t)(nas_hi(a) * nas_hi(b)); }
static inline uint32_t __SMUSDX(uint32_t a, uint32_t b)
{ return (uint32_t)(nas_lo(a) * nas_hi(b)) - (uint32_t)(nas_hi(a) * nas_lo(b)); }
static inline uint32_t __SMLAD(uint32_t a, uint32_t b, uint32_t acc) { return acc + __SMUAD(a, b); }
static inline uint32_t __SMLADX(uint32_t a, uint32_t b, uint32_t acc) { return acc + __SMUADX(a, b); }
static inline uint32_t __SMLSDX(uint32_t a, uint32_t b, uint32_t acc) { return acc + __SMUSDX(a, b); }

static inline int32_t nas_sat32(int64_t v) { return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v); }
static inline int32_t __QADD(int32_t a, int32_t b) { return nas_sat32((int64_t)a + b); }
static inline int32_t __QSUB(int32_t a, int32_t b) { return nas_sat32((int64_t)a - b); }
static inline uint64_t __SMLALD(uint32_t a, uint32_t b, uint64_t acc)
{ return acc + (uint64_t)(int64_t)(nas_lo(a) * nas_lo(b)) + (uint64_t)(int64_t)(nas_hi(a) * nas_hi(b)); }
static inline uint64_t __SMLALDX(uint32_t a, uint32_t b, uint64_t acc)
{ return acc + (uint64_t)(int64_t)(nas_lo(a) * nas_hi(b)) + (uint64_t)(int64_t)(nas_hi(a) * nas_lo(b)); }

#endif

/* The fixed front-end's own (nas_frontend.c): 16x16 products of the bottom/top halfwords (C that
 * compilers turn into SMULBB/SMULTT), each halfword's sign as 0 or 0xFFFF (SSAT16 to 1 bit), the 32x16
 * multiply-accumulates acc + ((a * bottom/top halfword
 * of b) >> 16), and a count of leading zeros that is 32 for 0 (CMSIS-DSP's __GNUC_PYTHON__ __CLZ is a loop). */
#define NAS_SMULBB(a, b) ((int32_t)(int16_t)((uint32_t)(a) & 0xFFFFu) * (int16_t)((uint32_t)(b) & 0xFFFFu))
#define NAS_SMULTT(a, b) ((int32_t)(int16_t)((uint32_t)(a) >> 16) * (int16_t)((uint32_t)(b) >> 16))
#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)
#define NAS_SIGNS16(v) ((uint32_t)__ssat16((int16x2_t)(v), 1))
#define NAS_SMLAWB(a, b, acc) __smlawb((int32_t)(a), (int32_t)(b), (int32_t)(acc))
#define NAS_SMLAWT(a, b, acc) __smlawt((int32_t)(a), (int32_t)(b), (int32_t)(acc))
#else
#define NAS_SIGNS16(v) ((((uint32_t)(v) & 0x8000u) ? 0xFFFFu : 0u) | (((uint32_t)(v) & 0x80000000u) ? 0xFFFF0000u : 0u))
#define NAS_SMLAWB(a, b, acc) \
    ((int32_t)((uint32_t)(acc) + (uint32_t)(int32_t)(((int64_t)(int32_t)(a) * (int16_t)((uint32_t)(b) & 0xFFFFu)) >> 16)))
#define NAS_SMLAWT(a, b, acc) \
    ((int32_t)((uint32_t)(acc) + (uint32_t)(int32_t)(((int64_t)(int32_t)(a) * (int16_t)((uint32_t)(b) >> 16)) >> 16)))
#endif
static inline uint32_t NAS_CLZ(uint32_t x) { return x ? (uint32_t)__builtin_clz(x) : 32u; }

#endif /* NAS_DSP_INTRINSICS_H */
