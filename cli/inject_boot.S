/* inject_boot.S — the bootstrap `selfprobe attach` copies into a process
 * that has no runtime (preload/inject.c).  Position independent: every
 * address it needs is in the argument block (struct sp_boot_args, whose
 * offsets are the BA_* below, checked against the C struct in inject.c).
 *
 * sp_boot_start runs on the hijacked thread, with %rax = pthread_create and
 * its four arguments in place: it starts the loader thread and stops on
 * int3 for the injector to restore the thread.  sp_boot_thread is that new
 * thread: it detaches itself, dlopens the runtime, calls its
 * selfprobe_control_start, notes the outcome (dlerror's text copied: its
 * buffer is freed with the thread) and returns, ending the thread.
 */
	.set BA_PTHREAD_CREATE, 0
	.set BA_DLOPEN, 8
	.set BA_DLSYM, 16
	.set BA_DLERROR, 24
	.set BA_PTHREAD_DETACH, 32
	.set BA_PTHREAD_SELF, 40
	.set BA_HANDLE, 56
	.set BA_START_RC, 64
	.set BA_TID, 68
	.set BA_DONE, 72
	.set BA_SYM, 80
	.set BA_ERR, 112
	.set BA_PATH, 368

	.section .rodata,"a"
	.globl sp_boot_start, sp_boot_thread, sp_boot_end
	.hidden sp_boot_start, sp_boot_thread, sp_boot_end
sp_boot_start:
	call *%rax
	int3
sp_boot_thread:
	push %rbx
	mov %rdi, %rbx
	mov $186, %eax                 /* gettid */
	syscall
	mov %eax, BA_TID(%rbx)
	call *BA_PTHREAD_SELF(%rbx)
	mov %rax, %rdi
	call *BA_PTHREAD_DETACH(%rbx)
	lea BA_PATH(%rbx), %rdi
	mov $2, %esi                   /* RTLD_NOW */
	call *BA_DLOPEN(%rbx)
	mov %rax, BA_HANDLE(%rbx)
	test %rax, %rax
	jz 2f
	mov %rax, %rdi
	lea BA_SYM(%rbx), %rsi
	call *BA_DLSYM(%rbx)
	test %rax, %rax
	jz 2f
	call *%rax
	mov %eax, BA_START_RC(%rbx)
	jmp 3f
2:	call *BA_DLERROR(%rbx)
	test %rax, %rax
	jz 3f
	lea BA_ERR(%rbx), %rdi
	mov $255, %ecx
1:	movb (%rax), %dl
	movb %dl, (%rdi)
	test %dl, %dl
	jz 3f
	inc %rax
	inc %rdi
	dec %ecx
	jnz 1b
	movb $0, (%rdi)
3:	movl $1, BA_DONE(%rbx)
	pop %rbx
	xor %eax, %eax
	ret
sp_boot_end:
	.section .note.GNU-stack,"",@progbits
