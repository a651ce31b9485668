/* sp_funcs.S — probe sites with a chosen first instruction, for sp_target.
 *
 * Every t_* function's first instruction is the point: it is what a probe
 * on the function entry displaces (emulated, run out of line, or relocated
 * into a trampoline).  Each returns a value computed from its argument that
 * sp_target.c checks, and several fold a self-check into the result (stack
 * alignment, the value a push or call wrote) so that a wrong emulation shows
 * up as a wrong return value, not only as a crash.
 *
 *   t_nop       nop                        → a + 1
 *   t_push      push %rbp                  → a + 2   (+ garbage if the pushed value or rsp is off)
 *   t_mov       mov %rdi,%rax              → a * b + 3
 *   t_jmp8      jmp rel8 (over a ud2)      → a + 4
 *   t_jcc_first jne rel8, on the flags the caller w_jcc_first set (cmp $0,%rdi)
 *                                          → a ? a + 5 : 100
 *   t_jcc       test %edi,%edi ; je        → a ? a + 6 : 200
 *   t_call      call rel32 h_call          → 2a + 7  (h_call checks its return address)
 *   t_ret       ret, rax untouched (via w_ret, which loads rax = a)  → a
 *   t_riprel    mov sp_riprel_val(%rip),%eax → a + 1000 (32-bit)
 *   t_sub       sub $8,%rsp (an OTHER instruction) → a + 9 (+ garbage if rsp is misaligned)
 *   t_endbr     endbr64                    → a + 10
 *   t_indjmp    jmp *%rax, rax = .Lindjmp_target set by w_indjmp → a + 11
 *   t_nop5      nopl 0x0(%rax,%rax,1) (5 bytes)                  → a + 13
 *   t_mt        push %rbx (called from threads)                  → a + 12
 *
 * Wrappers are named w_* and helpers h_* so that the glob "t_*" matches
 * exactly the functions the program counts.
 */
	.text

#define FUNC(name) .globl name; .type name, @function; .p2align 4; name:
#define END(name) .size name, . - name

FUNC(t_nop)
	nop
	lea 1(%rdi), %rax
	ret
END(t_nop)

/* At entry rsp ≡ 8 (mod 16); after the push it must be ≡ 0 and hold rbp. */
FUNC(t_push)
	push %rbp
	mov (%rsp), %rax
	sub %rbp, %rax          /* 0 when the push stored rbp */
	mov %rsp, %rcx
	and $15, %ecx           /* 0 when rsp moved by exactly 8 */
	add %rcx, %rax
	lea 2(%rdi,%rax), %rax
	pop %rbp
	ret
END(t_push)

FUNC(t_mov)
	mov %rdi, %rax
	imul %rsi, %rax
	add $3, %rax
	ret
END(t_mov)

/* A short jmp forced with .byte: GAS could otherwise pick either form. */
FUNC(t_jmp8)
	.byte 0xeb, 0x02        /* jmp .+4 */
	ud2
	lea 4(%rdi), %rax
	ret
END(t_jmp8)

/* First instruction is a jcc: it reads the flags of the caller's cmp. */
FUNC(t_jcc_first)
	jne 1f
	mov $100, %eax
	ret
1:	lea 5(%rdi), %rax
	ret
END(t_jcc_first)

FUNC(w_jcc_first)
	cmp $0, %rdi
	call t_jcc_first
	ret
END(w_jcc_first)

FUNC(t_jcc)
	test %edi, %edi
	je 1f
	lea 6(%rdi), %rax
	ret
1:	mov $200, %eax
	ret
END(t_jcc)

/* The call's return address must be t_call+5 (the call is 5 bytes). */
FUNC(t_call)
	call h_call
	lea 7(%rax), %rax
	ret
END(t_call)

FUNC(h_call)
	lea (%rdi,%rdi), %rax
	mov (%rsp), %rcx
	lea t_call+5(%rip), %rdx
	sub %rdx, %rcx          /* 0 when the return address is right */
	add %rcx, %rax
	ret
END(h_call)

FUNC(t_ret)
	ret
END(t_ret)

FUNC(w_ret)
	mov %rdi, %rax
	call t_ret
	ret
END(w_ret)

FUNC(t_riprel)
	mov sp_riprel_val(%rip), %eax
	add %edi, %eax
	ret
END(t_riprel)

/* At entry rsp ≡ 8 (mod 16); after sub $8 it must be ≡ 0. */
FUNC(t_sub)
	sub $8, %rsp
	mov %rdi, (%rsp)
	mov (%rsp), %rax
	mov %rsp, %rcx
	and $15, %ecx
	add %rcx, %rax
	add $9, %rax
	add $8, %rsp
	ret
END(t_sub)

FUNC(t_endbr)
	endbr64
	lea 10(%rdi), %rax
	ret
END(t_endbr)

/* An indirect jump at the entry, to a target inside the function. */
FUNC(t_indjmp)
	jmp *%rax
	ud2
.Lindjmp_target:
	lea 11(%rdi), %rax
	ret
END(t_indjmp)

FUNC(w_indjmp)
	lea .Lindjmp_target(%rip), %rax
	call t_indjmp
	ret
END(w_indjmp)

FUNC(t_nop5)
	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00
	lea 13(%rdi), %rax
	ret
END(t_nop5)

FUNC(t_mt)
	push %rbx
	lea 12(%rdi), %rax
	pop %rbx
	ret
END(t_mt)

	.data
	.p2align 2
	.globl sp_riprel_val
	.type sp_riprel_val, @object
sp_riprel_val:
	.long 1000
	.size sp_riprel_val, 4

	.section .note.GNU-stack, "", @progbits
