/*
 * frontend_driver.c -- counts the instructions of the generated front-end (nas_frontend.c) on the
 * QEMU mps2-an386 harness: FRONTEND_PUSHES hops of pseudo-random audio go through
 * nas_frontend_push; the pushes that compute a frame (all but the first ceil(n_fft/hop) - 1) are
 * timed, apart those that first slide the window (the push after one that returned a window).
 * Prints "@fe frame_insn / frames" (plain frames: total instructions, count) and
 * "@fe slide_insn / slides" (frames that also slid the window).
 */
#include <stdint.h>

#include "nas_frontend.h"
#include "qemu_harness.h"

#ifndef FRONTEND_PUSHES
#define FRONTEND_PUSHES 64
#endif

static int16_t hop[NAS_FRONTEND_HOP_LENGTH];
static uint32_t lcg = 0x2545F491u;

int main(void)
{
    const uint32_t warmup = (NAS_FRONTEND_N_FFT + NAS_FRONTEND_HOP_LENGTH - 1u) / NAS_FRONTEND_HOP_LENGTH;
    const uint64_t c0 = qh_insn_count();
    const uint64_t overhead = qh_insn_count() - c0;
    uint64_t frame_insn = 0, slide_insn = 0;
    int32_t frames = 0, slides = 0, ready = 0;
    nas_frontend_init();
    for (uint32_t k = 0; k < FRONTEND_PUSHES; k++)
    {
        for (int32_t i = 0; i < NAS_FRONTEND_HOP_LENGTH; i++)
        {
            lcg = lcg * 1664525u + 1013904223u;
            hop[i] = (int16_t)((int32_t)(int16_t)(lcg >> 16) / 4);
        }
        const int slide = ready;
        const uint64_t t0 = qh_insn_count();
        ready = nas_frontend_push(hop);
        const uint64_t t1 = qh_insn_count() - overhead;
        if (k + 1u >= warmup && slide)
        {
            slide_insn += t1 - t0;
            slides++;
        }
        else if (k + 1u >= warmup)
        {
            frame_insn += t1 - t0;
            frames++;
        }
    }
    qh_report_int("fe", "frame_insn", (int64_t)frame_insn);
    qh_report_int("fe", "frames", frames);
    qh_report_int("fe", "slide_insn", (int64_t)slide_insn);
    qh_report_int("fe", "slides", slides);
    return 0;
}
