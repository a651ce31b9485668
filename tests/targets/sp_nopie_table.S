/* sp_nopie_table — a non-PIE program with absolute jump tables (jmp
 * *table(,%rdi,8)), for test_decide.c: nt_sw_in's case 0 is at +2, inside
 * its entry's jmp window; nt_sw_out's cases all lie after it.  main returns
 * 0 and calls neither. */
	.text
#define FUNC(name) .globl name; .type name, @function; .p2align 4; name:
#define END(name) .size name, . - name

FUNC(nt_sw_in)
	xor %eax, %eax
.Lc0:	add $1, %eax			/* +2: case 0 */
	cmp $1, %edi
	ja .Ldef
	mov %edi, %edi
	jmp *.Ltab_in(,%rdi,8)
.Lc1:	mov $2, %eax
.Ldef:	ret
END(nt_sw_in)

FUNC(nt_sw_out)
	cmp $1, %edi			/* 3 bytes */
	ja .Ldef2			/* 2 bytes */
	mov %edi, %edi
	jmp *.Ltab_out(,%rdi,8)
.Lo0:	mov $1, %eax
	ret
.Lo1:	mov $2, %eax
.Ldef2:	ret
END(nt_sw_out)

FUNC(main)
	xor %eax, %eax
	ret
END(main)

	.section .rodata
	.p2align 3
.Ltab_in:	.quad .Lc0, .Lc1
.Ltab_out:	.quad .Lo0, .Lo1
	.section .note.GNU-stack,"",@progbits
