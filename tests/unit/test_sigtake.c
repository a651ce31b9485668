/* test_sigtake — the mechanism a runtime loaded late uses to lead libc's
 * sigaction and pthread_sigmask entry points into its own (sigtake.h):
 * a taken site's jmp, or its int3 where no jmp is safe, sends every call
 * to another function; a probe may not join it; disarmed, the function's
 * bytes and behaviour are its own again.  Shown on functions of this
 * test (e2e_attach.py latesig shows it on libc in a running process). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>

#include "arm.h"
#include "codemem.h"
#include "patch.h"
#include "registry.h"
#include "selfprobe.h"
#include "site.h"

#define FUNC(n) ".globl " #n "\n.type " #n ", @function\n" #n ":\n"
#define END(n) ".size " #n ", . - " #n "\n"

uint64_t tk_wide(uint64_t a);     /* a 10-byte first instruction: jmp-safe → a + 1 */
__asm__(".text\n.p2align 4\n"
	FUNC(tk_wide)
	"	movabs $1, %rax\n"          /* 10 bytes */
	"	add %rdi, %rax\n"
	"	ret\n"
	END(tk_wide));

uint64_t tk_loop1(uint64_t a);    /* the loop lands on byte 1: no jmp → max(a + 1, 1000) */
__asm__(".text\n.p2align 4\n"
	FUNC(tk_loop1)
	"	nop\n"
	"1:	add $1, %rdi\n"
	"	cmp $1000, %rdi\n"
	"	jb 1b\n"
	"	mov %rdi, %rax\n"
	"	ret\n"
	END(tk_loop1));

static uint64_t taken_target(uint64_t a)
{
	return a * 1000;
}

/* a jmp to TARGET near AT (what sigtake.c's stub is) */
static uintptr_t stub(uintptr_t at, uintptr_t target)
{
	uintptr_t s = sp_codemem_alloc(at, 16);
	cr_assert_neq(s, 0);
	uint8_t code[14] = { 0xff, 0x25, 0, 0, 0, 0 };
	memcpy(code + 6, &target, 8);
	cr_assert_eq(sp_patch_write(s, code, sizeof(code)), 0);
	return s;
}

static struct sp_site *take(uintptr_t fn, bool int3_ok, char *err, size_t n)
{
	sp_probe_setup();
	sp_probe_lock();
	struct sp_site *s = sp_probe_take_site(fn, stub(fn, (uintptr_t)taken_target), int3_ok, err, n);
	sp_probe_unlock();
	return s;
}

static void arm(struct sp_site *s)
{
	int rc = 1;
	sp_probe_lock();
	cr_assert_eq(sp_arm_batch(&s, 1, &rc), 0);
	sp_probe_unlock();
	cr_assert_eq(rc, 0);
}

static void disarm(struct sp_site *s)
{
	sp_probe_lock();
	sp_arm_disarm_batch(&s, 1);
	sp_probe_unlock();
	cr_assert_not(s->armed);
}

Test(sigtake, jmp_leads_every_call_elsewhere_and_disarm_restores)
{
	uint8_t before[16];
	memcpy(before, (const void *)tk_wide, sizeof(before));
	char err[256] = "";
	struct sp_site *s = take((uintptr_t)tk_wide, false, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	cr_assert(s->taken);
	cr_assert_eq(tk_wide(5), 6, "not armed yet");
	arm(s);
	cr_assert(s->jmp, "the jmp: %s", s->reason ? s->reason : "");
	cr_assert_eq(((const uint8_t *)tk_wide)[0], 0xe9);
	for (uint64_t i = 0; i < 1000; i++)
		cr_assert_eq(tk_wide(i), i * 1000);
	/* a probe may not join it */
	cr_assert_null(selfprobe_attach("uprobe:tk_wide", NULL, NULL));
	disarm(s);
	cr_assert_arr_eq(before, (const void *)tk_wide, sizeof(before), "the bytes are the function's again");
	cr_assert_eq(tk_wide(5), 6);
	arm(s);   /* the next session */
	cr_assert_eq(tk_wide(7), 7000);
	disarm(s);
	cr_assert_eq(tk_wide(7), 8);
}

Test(sigtake, no_safe_jmp_refused_or_int3)
{
	char err[256] = "";
	cr_assert_null(take((uintptr_t)tk_loop1, false, err, sizeof(err)), "no jmp and no int3 allowed");
	cr_assert(strstr(err, "tk_loop1"), "%s", err);
	struct sp_site *s = take((uintptr_t)tk_loop1, true, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	arm(s);
	cr_assert_not(s->jmp);
	cr_assert_eq(((const uint8_t *)tk_loop1)[0], 0xcc, "an int3");
	for (uint64_t i = 0; i < 100; i++)
		cr_assert_eq(tk_loop1(i), i * 1000, "the trap handler sends it to the target");
	disarm(s);
	cr_assert_eq(((const uint8_t *)tk_loop1)[0], 0x90);
	cr_assert_eq(tk_loop1(5), 1000);
}
