/*
 * kernel_driver.c -- counts the instructions of CMSIS-NN layer calls on the QEMU mps2-an386 harness.
 *
 * Input (semihosting file, little-endian int32 words): "KCNT", case count, then per case
 * op (1 conv, 2 depthwise, 3 fully connected, 4 max pool, 5 avg pool, 6 softmax, 7 add; 8, 9 and 10
 * the project's own nas_convolve_c1_s8, nas_depthwise_conv_s8 and nas_convolve_1x1_s8 with the conv and
 * depthwise parameters), repetitions, the
 * parameter count and the parameters (see each branch). Activations and weights are pseudo-random (an LCG),
 * per-channel multipliers 0.7 * 2^31 with shift -8, so outputs spread over the int8 range.
 *
 * Each case is timed exactly as the generated model.c runs a layer: the *_get_buffer_size call it
 * makes, then the wrapper the exporter calls (arm_convolve_wrapper_s8, arm_depthwise_conv_wrapper_s8,
 * arm_fully_connected_s8, arm_max_pool_s8, arm_avgpool_s8, arm_softmax_s8, arm_elementwise_add_s8), `reps`
 * times in a row on
 * the same data (so that short calls are not lost in the 40-instruction SysTick resolution). Prints,
 * per case i, "@insn i <instructions of all reps>" (SysTick under -icount shift=0, timer overhead
 * removed), "@status i <s>" and "@buf i <scratch bytes asked for>".
 */
#include <stdint.h>
#include <string.h>

#include "arm_nnfunctions.h"
#include "nas_kernels.h"
#include "qemu_harness.h"

#define IN_CAP (64u * 1024u)
#define ACT_CAP (384u * 1024u)
#define W_CAP (2u * 1024u * 1024u)
#define SCRATCH_CAP (128u * 1024u)
#define CH_CAP 4096

static int32_t g_cmd[IN_CAP / 4];
static int8_t g_in[ACT_CAP];
static int8_t g_out[ACT_CAP];
static int8_t g_w[W_CAP];
static int32_t g_scratch[SCRATCH_CAP / 4];
static int32_t g_bias[CH_CAP];
static int32_t g_mult[CH_CAP];
static int32_t g_shift[CH_CAP];
static uint32_t g_lcg = 0x1234567u;
static uint64_t g_overhead;
static int32_t g_reps;

static void fill(int8_t *dst, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
    {
        g_lcg = g_lcg * 1664525u + 1013904223u;
        dst[i] = (int8_t)(g_lcg >> 24);
    }
}

static void name_of(char *dst, int32_t v)
{
    char tmp[12];
    int32_t n = 0;
    do
    {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int32_t i = 0; i < n; i++)
    {
        dst[i] = tmp[n - 1 - i];
    }
    dst[n] = '\0';
}

/* conv / depthwise params: h w cin cout kh kw sh sw ph pw oh ow in_off out_off act_min act_max */
static int32_t run_conv(int32_t op, const int32_t *p, uint64_t *insn, int32_t *buf)
{
    const cmsis_nn_dims in_d = {1, p[0], p[1], p[2]};
    const cmsis_nn_dims out_d = {1, p[10], p[11], p[3]};
    const cmsis_nn_dims b_d = {1, 1, 1, p[3]};
    const cmsis_nn_per_channel_quant_params q = {g_mult, g_shift};
    cmsis_nn_context ctx = {g_scratch, (int32_t)SCRATCH_CAP};
    arm_cmsis_nn_status status = ARM_CMSIS_NN_SUCCESS;
    uint64_t t0, t1;
    fill(g_in, p[0] * p[1] * p[2]);
    if (op == 1 || op == 8 || op == 10)
    {
        const cmsis_nn_dims f_d = {p[3], p[4], p[5], p[2]};
        const cmsis_nn_conv_params cp = {p[12], p[13], {p[7], p[6]}, {p[9], p[8]}, {1, 1}, {p[14], p[15]}};
        fill(g_w, p[3] * p[4] * p[5] * p[2]);
        t0 = qh_insn_count();
        for (int32_t r = 0; r < g_reps; r++)
        {
            if (op == 1)
            {
                *buf = arm_convolve_wrapper_s8_get_buffer_size(&cp, &in_d, &f_d, &out_d);
                status = arm_convolve_wrapper_s8(&ctx, &cp, &q, &in_d, g_in, &f_d, g_w, &b_d, g_bias, &out_d, g_out);
            }
            else if (op == 8)
            {
                *buf = nas_convolve_c1_s8_get_buffer_size(&cp, &in_d, &f_d, &out_d);
                status = nas_convolve_c1_s8(&ctx, &cp, &q, &in_d, g_in, &f_d, g_w, &b_d, g_bias, &out_d, g_out);
            }
            else
            {
                *buf = nas_convolve_1x1_s8_get_buffer_size(&cp, &in_d, &f_d, &out_d);
                status = nas_convolve_1x1_s8(&ctx, &cp, &q, &in_d, g_in, &f_d, g_w, &b_d, g_bias, &out_d, g_out);
            }
        }
        t1 = qh_insn_count();
    }
    else if (op == 9)
    {
        const cmsis_nn_dims f_d = {1, p[4], p[5], p[3]};
        const cmsis_nn_dw_conv_params dp = {p[12], p[13], p[3] / p[2], {p[7], p[6]}, {p[9], p[8]}, {1, 1},
                                            {p[14], p[15]}};
        fill(g_w, p[4] * p[5] * p[3]);
        t0 = qh_insn_count();
        for (int32_t r = 0; r < g_reps; r++)
        {
            *buf = nas_depthwise_conv_s8_get_buffer_size(&dp, &in_d, &f_d, &out_d);
            status = nas_depthwise_conv_s8(&ctx, &dp, &q, &in_d, g_in, &f_d, g_w, &b_d, g_bias, &out_d, g_out);
        }
        t1 = qh_insn_count();
    }
    else
    {
        const cmsis_nn_dims f_d = {1, p[4], p[5], p[3]};
        const cmsis_nn_dw_conv_params dp = {p[12], p[13], p[3] / p[2], {p[7], p[6]}, {p[9], p[8]}, {1, 1},
                                            {p[14], p[15]}};
        fill(g_w, p[4] * p[5] * p[3]);
        t0 = qh_insn_count();
        for (int32_t r = 0; r < g_reps; r++)
        {
            *buf = arm_depthwise_conv_wrapper_s8_get_buffer_size(&dp, &in_d, &f_d, &out_d);
            status = arm_depthwise_conv_wrapper_s8(&ctx, &dp, &q, &in_d, g_in, &f_d, g_w, &b_d, g_bias, &out_d,
                                                   g_out);
        }
        t1 = qh_insn_count();
    }
    *insn = t1 - t0 - g_overhead;
    return status;
}

/* fully connected params: depth units in_off out_off act_min act_max */
static int32_t run_fc(const int32_t *p, uint64_t *insn, int32_t *buf)
{
    const cmsis_nn_dims in_d = {1, 1, 1, p[0]};
    const cmsis_nn_dims f_d = {p[0], 1, 1, p[1]};
    const cmsis_nn_dims b_d = {1, 1, 1, p[1]};
    const cmsis_nn_dims out_d = {1, 1, 1, p[1]};
    const cmsis_nn_fc_params fp = {p[2], 0, p[3], {p[4], p[5]}};
    const cmsis_nn_per_tensor_quant_params q = {1518500250, -8};
    cmsis_nn_context ctx = {g_scratch, (int32_t)SCRATCH_CAP};
    arm_cmsis_nn_status status = ARM_CMSIS_NN_SUCCESS;
    uint64_t t0, t1;
    fill(g_in, p[0]);
    fill(g_w, p[0] * p[1]);
    t0 = qh_insn_count();
    for (int32_t r = 0; r < g_reps; r++)
    {
        *buf = arm_fully_connected_s8_get_buffer_size(&f_d);
        status = arm_fully_connected_s8(&ctx, &fp, &q, &in_d, g_in, &f_d, g_w, &b_d, g_bias, &out_d, g_out);
    }
    t1 = qh_insn_count();
    *insn = t1 - t0 - g_overhead;
    return status;
}

/* pool params: h w c kh kw sh sw oh ow act_min act_max */
static int32_t run_pool(int32_t op, const int32_t *p, uint64_t *insn, int32_t *buf)
{
    const cmsis_nn_dims in_d = {1, p[0], p[1], p[2]};
    const cmsis_nn_dims f_d = {1, p[3], p[4], 1};
    const cmsis_nn_dims out_d = {1, p[7], p[8], p[2]};
    const cmsis_nn_pool_params pp = {{p[6], p[5]}, {0, 0}, {p[9], p[10]}};
    cmsis_nn_context ctx = {g_scratch, (int32_t)SCRATCH_CAP};
    arm_cmsis_nn_status status = ARM_CMSIS_NN_SUCCESS;
    uint64_t t0, t1;
    fill(g_in, p[0] * p[1] * p[2]);
    t0 = qh_insn_count();
    for (int32_t r = 0; r < g_reps; r++)
    {
        if (op == 4)
        {
            *buf = 0;
            status = arm_max_pool_s8(&ctx, &pp, &in_d, g_in, &f_d, &out_d, g_out);
        }
        else
        {
            *buf = arm_avgpool_s8_get_buffer_size(out_d.w, in_d.c);
            status = arm_avgpool_s8(&ctx, &pp, &in_d, g_in, &f_d, &out_d, g_out);
        }
    }
    t1 = qh_insn_count();
    *insn = t1 - t0 - g_overhead;
    return status;
}

/* softmax params: row_size mult shift diff_min */
static int32_t run_softmax(const int32_t *p, uint64_t *insn, int32_t *buf)
{
    uint64_t t0, t1;
    fill(g_in, p[0]);
    t0 = qh_insn_count();
    for (int32_t r = 0; r < g_reps; r++)
    {
        arm_softmax_s8(g_in, 1, p[0], p[1], p[2], p[3], g_out);
    }
    t1 = qh_insn_count();
    *insn = t1 - t0 - g_overhead;
    *buf = 0;
    return 0;
}

/* add params: elements in1_off in2_off out_off act_min act_max (multipliers of a typical residual add) */
static int32_t run_add(const int32_t *p, uint64_t *insn, int32_t *buf)
{
    arm_cmsis_nn_status status = ARM_CMSIS_NN_SUCCESS;
    uint64_t t0, t1;
    fill(g_in, p[0]);
    fill(g_w, p[0]);
    t0 = qh_insn_count();
    for (int32_t r = 0; r < g_reps; r++)
    {
        status = arm_elementwise_add_s8(g_in, g_w, p[1], 1073741824, 0, p[2], 1288490141, -1, 20, g_out, p[3],
                                        1533916908, -19, p[4], p[5], p[0]);
    }
    t1 = qh_insn_count();
    *insn = t1 - t0 - g_overhead;
    *buf = 0;
    return status;
}

int main(void)
{
    const int32_t got = qh_read_input(g_cmd, (uint32_t)sizeof(g_cmd));
    const uint64_t c0 = qh_insn_count();
    g_overhead = qh_insn_count() - c0;
    if (got < 8 || g_cmd[0] != 0x544e434b) /* "KCNT" */
    {
        qh_puts("@error input 1\n");
        return 2;
    }
    for (int32_t i = 0; i < CH_CAP; i++)
    {
        g_bias[i] = (i * 7919) % 4001 - 2000;
        g_mult[i] = 1518500250;
        g_shift[i] = -8;
    }
    const int32_t n = g_cmd[1];
    const int32_t *w = g_cmd + 2;
    for (int32_t i = 0; i < n; i++)
    {
        const int32_t op = w[0];
        const int32_t *p = w + 3;
        uint64_t insn = 0;
        int32_t buf = 0, status;
        char name[12];
        g_reps = w[1];
        w += 3 + w[2];
        if (op == 1 || op == 2 || (op >= 8 && op <= 10))
        {
            status = run_conv(op, p, &insn, &buf);
        }
        else if (op == 3)
        {
            status = run_fc(p, &insn, &buf);
        }
        else if (op == 4 || op == 5)
        {
            status = run_pool(op, p, &insn, &buf);
        }
        else if (op == 6)
        {
            status = run_softmax(p, &insn, &buf);
        }
        else if (op == 7)
        {
            status = run_add(p, &insn, &buf);
        }
        else
        {
            status = -100;
        }
        name_of(name, i);
        qh_report_int("insn", name, (int64_t)insn);
        qh_report_int("status", name, status);
        qh_report_int("buf", name, buf);
    }
    qh_report_int("done", "cases", n);
    return 0;
}
