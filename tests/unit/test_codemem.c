/* test_codemem — code memory's open chunks (codemem.h): a batch's
 * trampolines are stored with plain stores into chunks mapped read+write,
 * never executable, until sp_codemem_seal makes them read+exec; code that
 * may run at once (a plain allocation) never lands in an open chunk; where
 * mprotect refuses to make an open chunk executable (MDWE), it is mapped
 * again read+exec with its bytes and no chunk is opened again. */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codemem.h"
#include "unit.h"


/* mov $VALUE, %eax; ret */
static void ret_code(uint8_t code[6], uint32_t value)
{
	code[0] = 0xb8;
	memcpy(code + 1, &value, 4);
	code[5] = 0xc3;
}

static uintptr_t near(void)
{
	return (uintptr_t)&ret_code;
}

Test(codemem, open_slot_is_written_by_stores_and_runs_only_once_sealed)
{
	uintptr_t slot = sp_codemem_alloc_open(near(), 64, NULL);
	cr_assert(slot);
	char perm[5];
	unit_perms_of(slot, perm);
	cr_assert_str_eq(perm, "rw-p", "an open chunk is writable and never executable");
	cr_assert_not(sp_codemem_runnable(slot));
	uint8_t code[6];
	ret_code(code, 4242);
	cr_assert_eq(sp_codemem_write(slot, code, sizeof(code)), 0);
	cr_assert_eq(memcmp((void *)slot, code, sizeof(code)), 0);

	cr_assert_eq(sp_codemem_seal(), 0);
	unit_perms_of(slot, perm);
	cr_assert_str_eq(perm, "r-xp");
	cr_assert(sp_codemem_runnable(slot));
	uint32_t (*fn)(void) = (uint32_t (*)(void))slot;
	cr_assert_eq(fn(), 4242);
	/* sealed: stores no longer (the caller writes through the patcher) */
	ret_code(code, 1);
	cr_assert_eq(sp_codemem_write(slot, code, sizeof(code)), -1);
	cr_assert_eq(fn(), 4242);
}

Test(codemem, plain_slot_is_never_in_an_open_chunk)
{
	uintptr_t open = sp_codemem_alloc_open(near(), 64, NULL);
	cr_assert(open);
	for (int i = 0; i < 8; i++) {
		uintptr_t plain = sp_codemem_alloc(near(), 64);
		cr_assert(plain);
		char perm[5];
		unit_perms_of(plain, perm);
		cr_assert_str_eq(perm, "r-xp", "a plain slot's code may run as soon as it is written");
		cr_assert(sp_codemem_runnable(plain));
		uint8_t b = 0xc3;
		cr_assert_eq(sp_codemem_write(plain, &b, 1), -1);
	}
	/* the open chunk stayed open, and later open slots fill it */
	cr_assert_not(sp_codemem_runnable(open));
	uintptr_t next = sp_codemem_alloc_open(near(), 64, NULL);
	cr_assert(next);
	cr_assert_not(sp_codemem_runnable(next));
	cr_assert_eq(sp_codemem_seal(), 0);
	cr_assert(sp_codemem_runnable(open) && sp_codemem_runnable(next));
}

/* Batches of one trampoline (a probe attached at a time) fill a sealed
 * chunk's room as before, not a new chunk each (4096 at most). */
Test(codemem, small_batches_share_a_sealed_chunk)
{
	uintptr_t first = sp_codemem_alloc_open(near(), 64, NULL);
	cr_assert(first);
	cr_assert_eq(sp_codemem_seal(), 0);
	for (int i = 0; i < 8; i++) {
		uintptr_t next = sp_codemem_alloc_open(near(), 64, NULL);
		cr_assert(next);
		char perm[5];
		unit_perms_of(next, perm);
		cr_assert_str_eq(perm, "r-xp", "batch %d mapped a chunk of its own", i);
		cr_assert_lt(next - first, 64u << 10, "batch %d: not the first chunk", i);
		uint8_t b = 0xc3;
		cr_assert_eq(sp_codemem_write(next, &b, 1), -1, "a sealed chunk is written by the patcher");
		cr_assert_eq(sp_codemem_seal(), 0);
	}
}

Test(codemem, write_outside_code_memory_is_refused)
{
	uint8_t buf[16] = { 0 }, b = 1;
	cr_assert_eq(sp_codemem_write((uintptr_t)buf, &b, 1), -1);
	cr_assert_eq(buf[0], 0);
	cr_assert(sp_codemem_runnable((uintptr_t)buf), "not ours: nothing to seal");
}

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

/* In a child: MDWE set after an open slot was written.  Exit 0: sealed
 * anyway and runs; 77: no MDWE on this kernel; else the failed step. */
static int mdwe_child(void)
{
	uintptr_t slot = sp_codemem_alloc_open(near(), 64, NULL);
	uint8_t code[6];
	ret_code(code, 77177);
	if (!slot || sp_codemem_write(slot, code, sizeof(code)) != 0)
		return 1;
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0)
		return 77;
	if (sp_codemem_seal() != 0 || !sp_codemem_runnable(slot))
		return 2;
	char perm[5];
	unit_perms_of(slot, perm);
	if (strcmp(perm, "r-xp") != 0)
		return 3;
	if (((uint32_t (*)(void))slot)() != 77177)
		return 4;
	/* no chunk is opened again: the next slot is written by the patcher */
	uintptr_t next = sp_codemem_alloc_open(near(), 64, NULL);
	if (!next || !sp_codemem_runnable(next) || sp_codemem_write(next, code, sizeof(code)) != -1)
		return 5;
	return 0;
}

Test(codemem, refused_exec_gain_maps_the_open_chunk_again)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(mdwe_child());
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		cr_skip_test("PR_SET_MDWE not supported (kernel before 6.3)");
	cr_assert_eq(WEXITSTATUS(st), 0, "step %d failed", WEXITSTATUS(st));
}
