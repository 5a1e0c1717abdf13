/*
 * harness.c -- semihosting I/O, SysTick instruction counter, stack watermark
 * and the few newlib system calls (_write, _sbrk, _exit, ...) for the QEMU
 * mps2-an386 harness.  See qemu_harness.h.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "qemu_harness.h"

/* ------------------------------------------------------------ semihosting */

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04
#define SYS_READ 0x06
#define SYS_FLEN 0x0C
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define OPEN_MODE_RB 1

static int32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

/* ------------------------------------------------------------ output */

static char out_buf[256];
static uint32_t out_len;

void qh_flush(void)
{
    if (out_len > 0u)
    {
        out_buf[out_len] = '\0';
        (void)semihost(SYS_WRITE0, out_buf);
        out_len = 0u;
    }
}

void qh_putc(char c)
{
    if (c == '\0')
    {
        return; /* SYS_WRITE0 strings cannot carry NUL */
    }
    out_buf[out_len++] = c;
    if (c == '\n' || out_len >= sizeof(out_buf) - 1u)
    {
        qh_flush();
    }
}

void qh_puts(const char *s)
{
    while (*s)
    {
        qh_putc(*s++);
    }
}

void qh_put_uint(uint64_t v)
{
    char tmp[21];
    int n = 0;
    do
    {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    while (n)
    {
        qh_putc(tmp[--n]);
    }
}

void qh_put_int(int64_t v)
{
    if (v < 0)
    {
        qh_putc('-');
        qh_put_uint((uint64_t)0 - (uint64_t)v);
    }
    else
    {
        qh_put_uint((uint64_t)v);
    }
}

void qh_put_hex(const void *data, uint32_t nbytes)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)data;
    for (uint32_t i = 0; i < nbytes; i++)
    {
        qh_putc(digits[p[i] >> 4]);
        qh_putc(digits[p[i] & 15u]);
    }
}

void qh_report_int(const char *tag, const char *name, int64_t value)
{
    qh_putc('@');
    qh_puts(tag);
    qh_putc(' ');
    qh_puts(name);
    qh_putc(' ');
    qh_put_int(value);
    qh_putc('\n');
}

void qh_report_hex(const char *name, const void *data, uint32_t nbytes)
{
    qh_puts("@hex ");
    qh_puts(name);
    qh_putc(' ');
    qh_put_hex(data, nbytes);
    qh_putc('\n');
}

/* ------------------------------------------------------------ input */

static int32_t open_input(void)
{
    const char *name = QH_INPUT_FILE;
    uint32_t args[3];
    args[0] = (uint32_t)(uintptr_t)name;
    args[1] = OPEN_MODE_RB;
    args[2] = (uint32_t)strlen(name);
    return semihost(SYS_OPEN, args);
}

static void close_input(int32_t handle)
{
    uint32_t args[1];
    args[0] = (uint32_t)handle;
    (void)semihost(SYS_CLOSE, args);
}

int32_t qh_input_size(void)
{
    const int32_t h = open_input();
    if (h < 0)
    {
        return -1;
    }
    uint32_t args[1];
    args[0] = (uint32_t)h;
    const int32_t len = semihost(SYS_FLEN, args);
    close_input(h);
    return len;
}

int32_t qh_read_input(void *dst, uint32_t max)
{
    const int32_t h = open_input();
    if (h < 0)
    {
        return -1;
    }
    uint32_t args[3];
    args[0] = (uint32_t)h;
    args[1] = (uint32_t)(uintptr_t)dst;
    args[2] = max;
    const int32_t not_read = semihost(SYS_READ, args); /* returns bytes NOT read */
    close_input(h);
    return not_read < 0 ? -1 : (int32_t)max - not_read;
}

/* ------------------------------------------------------------ SysTick */

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
/* 24-bit reload; tests may shrink the period (-DQH_SYSTICK_RELOAD=...) to
 * exercise the wrap counting. */
#ifndef QH_SYSTICK_RELOAD
#define QH_SYSTICK_RELOAD 0x00FFFFFFu
#endif
#define SYST_RELOAD ((uint32_t)(QH_SYSTICK_RELOAD) & 0x00FFFFFFu)

static volatile uint32_t systick_wraps;

void qh_systick_handler(void);
void qh_start_systick(void);

void qh_systick_handler(void)
{
    systick_wraps++;
}

void qh_start_systick(void)
{
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* enable, interrupt on wrap, core clock */
    /* The counter reads 0 until the first tick loads the reload value; wait
     * for that (< 1 tick = 40 instructions) so that qh_ticks() never sees the
     * initial 0 as a full elapsed period, then start counting wraps. */
    for (uint32_t guard = 0; SYST_CVR == 0u && guard < 1000000u; guard++)
    {
    }
    systick_wraps = 0u;
}

uint64_t qh_ticks(void)
{
    uint32_t w1, w2, v;
    do
    {
        w1 = systick_wraps;
        v = SYST_CVR;
        w2 = systick_wraps;
    } while (w1 != w2);
    return (uint64_t)w1 * (SYST_RELOAD + 1u) + (SYST_RELOAD - (v & 0x00FFFFFFu));
}

uint64_t qh_insn_count(void)
{
    return qh_ticks() * QH_INSN_PER_TICK;
}

/* ------------------------------------------------------------ stack */

extern uint32_t __stack_top__, __stack_paint_start__;

uint32_t qh_stack_used(void)
{
    const uint32_t *p = &__stack_paint_start__;
    while (p < &__stack_top__ && *p == QH_STACK_PATTERN)
    {
        p++;
    }
    return (uint32_t)((uintptr_t)&__stack_top__ - (uintptr_t)p);
}

/* ------------------------------------------------------------ exit / faults */

extern uint32_t __bss_end__;

void qh_exit(int code)
{
    /* The painted window reaches down to .bss when RAM is small: if even its
     * lowest word was overwritten, the stack has (probably) run into .bss. */
    if (&__stack_paint_start__ == &__bss_end__ && __stack_paint_start__ != QH_STACK_PATTERN)
    {
        qh_puts("@warn stack_overflow 1\n");
    }
    qh_flush();
    uint32_t args[2];
    args[0] = ADP_STOPPED_APPLICATION_EXIT;
    args[1] = (uint32_t)code;
    (void)semihost(SYS_EXIT_EXTENDED, args);
    /* not reached under QEMU; fall back to the plain exit call */
    (void)semihost(SYS_EXIT, (const void *)(uintptr_t)ADP_STOPPED_APPLICATION_EXIT);
    for (;;)
    {
    }
}

static void put_hex32(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    qh_puts("0x");
    for (int i = 28; i >= 0; i -= 4)
    {
        qh_putc(digits[(v >> i) & 15u]);
    }
}

void qh_fault_report(const uint32_t *frame, uint32_t ipsr);

void qh_fault_report(const uint32_t *frame, uint32_t ipsr)
{
    qh_putc('\n');
    qh_puts("@fault exception ");
    qh_put_uint(ipsr & 0x1FFu);
    qh_puts(" pc ");
    put_hex32(frame[6]);
    qh_puts(" lr ");
    put_hex32(frame[5]);
    qh_puts(" cfsr ");
    put_hex32(*(volatile uint32_t *)0xE000ED28u);
    qh_puts(" hfsr ");
    put_hex32(*(volatile uint32_t *)0xE000ED2Cu);
    qh_puts(" bfar ");
    put_hex32(*(volatile uint32_t *)0xE000ED38u);
    qh_putc('\n');
    qh_exit(QH_FAULT_EXIT_CODE);
}

/* ------------------------------------------------------------ newlib glue */

extern uint8_t __heap_start__, __heap_limit__;

int _write(int fd, const char *buf, int len);
int _read(int fd, char *buf, int len);
void *_sbrk(ptrdiff_t incr);
void _exit(int code);
int _close(int fd);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
int _lseek(int fd, int offset, int whence);
int _kill(int pid, int sig);
int _getpid(void);

int _write(int fd, const char *buf, int len)
{
    if (fd != 1 && fd != 2)
    {
        errno = EBADF;
        return -1;
    }
    for (int i = 0; i < len; i++)
    {
        qh_putc(buf[i]);
    }
    return len;
}

int _read(int fd, char *buf, int len)
{
    (void)fd;
    (void)buf;
    (void)len;
    return 0;
}

void *_sbrk(ptrdiff_t incr)
{
    static uint8_t *brk = &__heap_start__;
    uint8_t *prev = brk;
    if (incr < 0 || (uintptr_t)(&__heap_limit__ - brk) < (uintptr_t)incr)
    {
        errno = ENOMEM;
        return (void *)-1;
    }
    brk += incr;
    return prev;
}

void _exit(int code)
{
    qh_exit(code);
}

int _close(int fd)
{
    (void)fd;
    return -1;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR;
    return 0;
}

int _isatty(int fd)
{
    (void)fd;
    return 1;
}

int _lseek(int fd, int offset, int whence)
{
    (void)fd;
    (void)offset;
    (void)whence;
    return 0;
}

int _kill(int pid, int sig)
{
    (void)pid;
    (void)sig;
    errno = EINVAL;
    return -1;
}

int _getpid(void)
{
    return 1;
}
