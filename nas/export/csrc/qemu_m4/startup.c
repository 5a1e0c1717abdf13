/*
 * startup.c -- vector table and reset handler for QEMU mps2-an386.
 *
 * Reset: enable the FPU (CPACR CP10/CP11 full access) before anything else,
 * copy .data from its load image, zero .bss, paint the stack window, start
 * SysTick (core clock, 24-bit reload, wrap interrupt), call main() and exit
 * with its return value through semihosting.
 */
#include <stdint.h>

#include "qemu_harness.h"

extern uint32_t __data_start__, __data_end__, __data_load__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __stack_top__, __stack_paint_start__;

extern int main(void);
void qh_systick_handler(void);
void qh_fault_report(const uint32_t *frame, uint32_t ipsr);
void qh_start_systick(void);

void Reset_Handler(void) __attribute__((noreturn, optimize("no-tree-loop-distribute-patterns")));
void Default_Handler(void) __attribute__((naked));

void Reset_Handler(void)
{
    /* FPU first: with -mfloat-abi=hard any later code may use VFP registers. */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");

    {
        uint32_t *dst = &__data_start__;
        const uint32_t *src = &__data_load__;
        while (dst < &__data_end__)
        {
            *dst++ = *src++;
        }
    }
    for (uint32_t *p = &__bss_start__; p < &__bss_end__; p++)
    {
        *p = 0u;
    }
    {
        /* paint up to 256 bytes below the current stack pointer */
        uint32_t *p = &__stack_paint_start__;
        uint32_t sp;
        __asm__ volatile("mov %0, sp" : "=r"(sp));
        while ((uint32_t)p < sp - 256u)
        {
            *p++ = QH_STACK_PATTERN;
        }
    }
    qh_start_systick();
    qh_exit(main());
}

/* Any unexpected exception: hand the stacked frame (MSP) and the exception
 * number to qh_fault_report, which prints them and exits QH_FAULT_EXIT_CODE
 * (bl, not b: its range also reaches across large ARMv6-M programs). */
void Default_Handler(void)
{
    __asm__ volatile("mrs r0, msp\n\t"
                     "mrs r1, ipsr\n\t"
                     "bl qh_fault_report\n\t");
}

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));

typedef void (*qh_vector)(void);

/* 16 system exceptions + 32 external IRQs (all routed to the fault handler). */
__attribute__((section(".isr_vector"), used)) const qh_vector qh_vector_table[16 + 32] = {
    (qh_vector)(uintptr_t)&__stack_top__,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    qh_systick_handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler,
};
