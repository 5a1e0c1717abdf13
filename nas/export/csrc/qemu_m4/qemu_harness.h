/*
 * qemu_harness.h -- minimal bare-metal harness for QEMU's mps2-an386
 * (Cortex-M4F) machine, used to run and measure exported models.
 *
 * Run with:
 *   qemu-system-arm -M mps2-an386 -nographic \
 *       -semihosting-config enable=on,target=native -icount shift=0 -kernel app.elf
 *
 * The program defines an ordinary `int main(void)`; its return value becomes
 * QEMU's exit code (semihosting SYS_EXIT_EXTENDED).  Output goes to the
 * semihosting console, line buffered.  Input bytes, if any, are read from the
 * host file QH_INPUT_FILE (relative to QEMU's working directory).
 *
 * Instruction counting: SysTick runs from the 25 MHz core clock with its
 * interrupt counting 24-bit wraps; under `-icount shift=0` QEMU retires one
 * instruction per virtual ns, so one SysTick tick = 40 instructions
 * (resolution +-40 instructions; meaningless without -icount).  The wrap
 * handler costs a few instructions every 671 M instructions.
 *
 * Stack: the top QH_STACK_PAINT_BYTES of RAM (default 64 KiB, a linker
 * symbol) are painted at reset; qh_stack_used() reports the deepest use and
 * qh_exit() prints "@warn stack_overflow 1" when the paint reached .bss.
 */
#ifndef QEMU_HARNESS_H
#define QEMU_HARNESS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Instructions per SysTick tick on mps2-an386 under -icount shift=0. */
#define QH_INSN_PER_TICK 40u

/** Host file that qh_read_input() reads. */
#define QH_INPUT_FILE "qh_input.bin"

/** Exit code used when the core takes a fault (HardFault etc.). */
#define QH_FAULT_EXIT_CODE 86

/** Word written over the unused stack at reset (see qh_stack_used). */
#define QH_STACK_PATTERN 0xC5AC5AC5u

/* ---- output (buffered; flushed at '\n', when full and at exit) ---- */
void qh_puts(const char *s);                         /* string, no newline added */
void qh_putc(char c);
void qh_put_int(int64_t v);                          /* decimal */
void qh_put_uint(uint64_t v);                        /* decimal */
void qh_put_hex(const void *data, uint32_t nbytes);  /* lowercase hex, two digits per byte */
void qh_flush(void);

/** Print "@<tag> <name> <value>\n" -- the line format parsed by nas.export.qemu.parse_tagged. */
void qh_report_int(const char *tag, const char *name, int64_t value);

/** Print "@hex <name> <hex bytes>\n". */
void qh_report_hex(const char *name, const void *data, uint32_t nbytes);

/* ---- input ---- */
/** Size in bytes of QH_INPUT_FILE, or -1 if it does not exist. */
int32_t qh_input_size(void);
/** Read up to max bytes of QH_INPUT_FILE into dst (from its start); returns bytes read or -1. */
int32_t qh_read_input(void *dst, uint32_t max);

/* ---- measurement ---- */
/** Raw SysTick ticks since reset (64-bit, wrap-corrected). */
uint64_t qh_ticks(void);
/** Retired instructions since reset (= ticks * 40; needs -icount shift=0). */
uint64_t qh_insn_count(void);
/** Deepest stack use so far in bytes (stack painted at reset; bounded by the
 *  painted window QH_STACK_PAINT_BYTES, default 64 KiB). */
uint32_t qh_stack_used(void);

/* ---- exit ---- */
/** Flush output and terminate QEMU with the given exit code (0..255). */
void qh_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* QEMU_HARNESS_H */
