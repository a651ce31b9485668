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
	.section .note.GNU-stack,"",@progbits
