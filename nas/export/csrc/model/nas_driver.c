/*
 * nas_driver.c -- runs an exported model (model.c/model.h) on a batch of int8 input windows and
 * prints its scores, for the exporter's verification (nas.export.verify).
 *
 * Host build: `nas_driver <inputs.bin>` prints "@hex <i> <scores>" per window and "@done n <count>".
 * QEMU build (-DNAS_DRIVER_QEMU, mps2-an386 harness): reads the windows from the semihosting input
 * file and also prints "@insn <i> <instructions>" per inference and "@stack used <bytes>".
 * NAS_DRIVER_MAX_INPUTS (default 1) sizes the input buffer: with 1 the program holds exactly the
 * one feature window a firmware keeps, so its ELF sizes stand for a deployment.
 *
 * QEMU build with -DNAS_DRIVER_FRONTEND: the whole pipeline of a deployment. Audio hops of
 * NAS_FRONTEND_HOP_LENGTH int16 samples (a deterministic pseudo-random signal, see
 * nas.export.verify.driver_audio) go through nas_frontend_push; every ready window is classified
 * by nas_model_invoke on nas_frontend_window(). Prints "@hex <w>" scores, "@hex f<w>" the window's
 * features and "@insn <w>" model
 * instructions per window, "@fe frame_max" / "@fe frame_total" / "@fe frames" front-end instructions
 * per computed frame, "@stack used". NAS_DRIVER_PUSHES hops are pushed.
 */
#include <stdint.h>

#include "model.h"

#ifndef NAS_DRIVER_MAX_INPUTS
#define NAS_DRIVER_MAX_INPUTS 1
#endif

static int8_t nas_driver_scores[NAS_MODEL_NUM_CLASSES];

#if !defined(NAS_DRIVER_FRONTEND)
static int8_t nas_driver_inputs[NAS_DRIVER_MAX_INPUTS * NAS_MODEL_INPUT_BYTES];
#endif

#if defined(NAS_DRIVER_QEMU)
#include "qemu_harness.h"

static void index_name(char *dst, int32_t v)
{
    char tmp[12];
    int32_t n = 0, i;
    do
    {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
    {
        dst[i] = tmp[n - 1 - i];
    }
    dst[n] = '\0';
}

#if defined(NAS_DRIVER_FRONTEND)
#include "nas_frontend.h"

#ifndef NAS_DRIVER_PUSHES
#define NAS_DRIVER_PUSHES 64
#endif

static int16_t nas_driver_hop[NAS_FRONTEND_HOP_LENGTH];
static uint32_t nas_driver_lcg = 0x2545F491u;

/* audio: int16 from the top bits of a 32-bit LCG, scaled down by 4 (about -12 dBFS white noise) */
static void fill_hop(void)
{
    int32_t i;
    for (i = 0; i < NAS_FRONTEND_HOP_LENGTH; i++)
    {
        nas_driver_lcg = nas_driver_lcg * 1664525u + 1013904223u;
        nas_driver_hop[i] = (int16_t)((int32_t)(int16_t)(nas_driver_lcg >> 16) / 4);
    }
}

int main(void)
{
    int32_t k, windows = 0;
    uint64_t fe_total = 0, fe_max = 0, fe_frames = 0;
    const uint64_t c0 = qh_insn_count();
    const uint64_t overhead = qh_insn_count() - c0;
    nas_frontend_init();
    for (k = 0; k < NAS_DRIVER_PUSHES; k++)
    {
        uint64_t t0, t1;
        int ready;
        fill_hop();
        t0 = qh_insn_count();
        ready = nas_frontend_push(nas_driver_hop);
        t1 = qh_insn_count() - overhead;
        if ((uint32_t)k + 1u >= (NAS_FRONTEND_N_FFT + NAS_FRONTEND_HOP_LENGTH - 1u) / NAS_FRONTEND_HOP_LENGTH)
        {
            fe_total += t1 - t0;
            fe_frames++;
            if (t1 - t0 > fe_max)
            {
                fe_max = t1 - t0;
            }
        }
        if (ready)
        {
            char name[16];
            int rc;
            t0 = qh_insn_count();
            rc = nas_model_invoke(nas_frontend_window(), nas_driver_scores);
            t1 = qh_insn_count() - overhead;
            index_name(name, windows);
            if (rc != NAS_MODEL_OK)
            {
                qh_report_int("rc", name, rc);
                return 3;
            }
            qh_report_int("insn", name, (int64_t)(t1 - t0));
            qh_report_hex(name, nas_driver_scores, NAS_MODEL_NUM_CLASSES);
            name[0] = 'f';
            index_name(name + 1, windows);
            qh_report_hex(name, nas_frontend_window(), NAS_MODEL_INPUT_BYTES);
            windows++;
        }
    }
    qh_report_int("fe", "frame_max", (int64_t)fe_max);
    qh_report_int("fe", "frame_total", (int64_t)fe_total);
    qh_report_int("fe", "frames", (int64_t)fe_frames);
    qh_report_int("stack", "used", (int64_t)qh_stack_used());
    qh_report_int("done", "n", windows);
    return 0;
}

#else

int main(void)
{
    const int32_t got = qh_read_input(nas_driver_inputs, (uint32_t)sizeof(nas_driver_inputs));
    int32_t count, i;
    const uint64_t c0 = qh_insn_count();
    const uint64_t overhead = qh_insn_count() - c0;
    if (got < NAS_MODEL_INPUT_BYTES)
    {
        qh_puts("@error input 1\n");
        return 2;
    }
    count = got / NAS_MODEL_INPUT_BYTES;
    for (i = 0; i < count; i++)
    {
        char name[12];
        uint64_t t0, t1;
        int rc;
        t0 = qh_insn_count();
        rc = nas_model_invoke(nas_driver_inputs + (int32_t)NAS_MODEL_INPUT_BYTES * i, nas_driver_scores);
        t1 = qh_insn_count() - overhead;
        index_name(name, i);
        if (rc != NAS_MODEL_OK)
        {
            qh_report_int("rc", name, rc);
            return 3;
        }
        qh_report_int("insn", name, (int64_t)(t1 - t0));
        qh_report_hex(name, nas_driver_scores, NAS_MODEL_NUM_CLASSES);
    }
    qh_report_int("stack", "used", (int64_t)qh_stack_used());
    qh_report_int("done", "n", count);
    return 0;
}
#endif /* NAS_DRIVER_FRONTEND */

#else
#include <stdio.h>

int main(int argc, char **argv)
{
    FILE *f;
    size_t got;
    int32_t count, i, k;
    if (argc < 2 || (f = fopen(argv[1], "rb")) == NULL)
    {
        fprintf(stderr, "usage: nas_driver inputs.bin\n");
        return 2;
    }
    got = fread(nas_driver_inputs, 1, sizeof(nas_driver_inputs), f);
    fclose(f);
    count = (int32_t)(got / NAS_MODEL_INPUT_BYTES);
    for (i = 0; i < count; i++)
    {
        const int rc = nas_model_invoke(nas_driver_inputs + (int32_t)NAS_MODEL_INPUT_BYTES * i, nas_driver_scores);
        if (rc != NAS_MODEL_OK)
        {
            printf("@rc %d %d\n", (int)i, rc);
            return 3;
        }
        printf("@hex %d ", (int)i);
        for (k = 0; k < NAS_MODEL_NUM_CLASSES; k++)
        {
            printf("%02x", (unsigned)(uint8_t)nas_driver_scores[k]);
        }
        printf("\n");
    }
    printf("@done n %d\n", (int)count);
    return 0;
}
#endif
