/* sp_go_call_on_stack(fn, stack_top): call FN on the stack whose top is
 * STACK_TOP, then come back to the caller's stack (golang.h).  The caller's
 * rsp is kept in callee-saved rbx across the call. */
	.text
	.globl sp_go_call_on_stack
	.hidden sp_go_call_on_stack
	.type sp_go_call_on_stack, @function
sp_go_call_on_stack:
	.cfi_startproc
	push %rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	mov %rsp, %rbx
	.cfi_def_cfa_register %rbx
	and $-16, %rsi
	mov %rsi, %rsp
	call *%rdi
	mov %rbx, %rsp
	.cfi_def_cfa_register %rsp
	pop %rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbx
	ret
	.cfi_endproc
	.size sp_go_call_on_stack, .-sp_go_call_on_stack

/* sp_go_tramp_call: FN (%rdx) called with %rdi, %rsi on the thread's stack
 * for Go sites (golang.h), its eax returned.  Called by a trampoline with
 * %rsp 16-byte aligned before the call.  The stack (STACK_SIZE, mapped
 * NORESERVE at the thread's first call with a raw mmap: no libc code, which
 * may be probed) is handed out in NEST-byte regions from sp_go_stack_cur
 * down: cur is lowered before the region is used and restored after, so a
 * signal handler's hit in between takes the region below, or the same one
 * before we touch it (it has given it back when we resume). */
#include "golang_stack.h"
#define STACK_SIZE SP_GO_STACK_SIZE
#define NEST SP_GO_STACK_NEST
	.globl sp_go_tramp_call
	.hidden sp_go_tramp_call
	.type sp_go_tramp_call, @function
sp_go_tramp_call:
	.cfi_startproc
	push %rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	mov %rsp, %rbp
	.cfi_def_cfa_register %rbp
	push %rbx
	push %r12
	.cfi_rel_offset %rbx, -8
	.cfi_rel_offset %r12, -16
	mov sp_go_stack_cur@gottpoff(%rip), %r12
	mov %fs:(%r12), %rbx            /* rbx: the top of our region */
	test %rbx, %rbx
	jnz 1f
	push %rdi
	push %rsi
	push %rdx
	mov $9, %eax                    /* mmap(0, STACK_SIZE, RW, PRIVATE|ANON|NORESERVE, -1, 0) */
	xor %edi, %edi
	mov $STACK_SIZE, %esi
	mov $3, %edx
	mov $0x4022, %r10d
	mov $-1, %r8
	xor %r9d, %r9d
	syscall
	pop %rdx
	pop %rsi
	pop %rdi
	cmp $-4096, %rax
	ja 3f                           /* no memory: the current stack, as before */
	mov sp_go_stack_base@gottpoff(%rip), %rcx
	mov %rax, %fs:(%rcx)            /* the base first: a nested call sees both or none */
	lea STACK_SIZE(%rax), %rbx
	mov %rbx, %fs:(%r12)
1:	lea -NEST(%rbx), %rax
	mov sp_go_stack_base@gottpoff(%rip), %rcx
	cmp %fs:(%rcx), %rax
	jb 3f                           /* nested too deep: the current stack */
	mov %rax, %fs:(%r12)            /* ours: [rax, rbx) */
	mov %rbx, %rsp
	call *%rdx
	mov %rbx, %fs:(%r12)            /* given back */
	jmp 4f
3:	and $-16, %rsp
	call *%rdx
4:	lea -16(%rbp), %rsp
	pop %r12
	pop %rbx
	pop %rbp
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_endproc
	.size sp_go_tramp_call, .-sp_go_tramp_call
	.section .note.GNU-stack,"",@progbits
