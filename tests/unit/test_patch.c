/* patch: writes made later (sp_patch_write_later) and spans of several
 * pages (sp_patch_write_many), on read+exec memory of this process:
 *
 *   - under a hold, bytes given to sp_patch_write_later are not there until
 *     the flush (an arming batch's, or the last release); without a hold
 *     they are written at once;
 *   - a flush writes every piece, keeps the bytes between pieces as they
 *     are at the flush, and touches no page that holds no piece (code
 *     memory skipped by a fitted allocation is never memory);
 *   - a piece that cannot be written sets its FAILED flag, the others are
 *     written;
 *   - sp_patch_write_many over neighbouring pages: every piece written,
 *     the bytes between kept, a page without a piece untouched;
 *   - a program that closes the held /proc/self/mem and opens a file of
 *     its own at that number: the next write still reaches the code, and
 *     that file is neither written nor closed.
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#include "patch.h"
#include "trap.h"

#define PG 4096

/* N pages of read+exec anonymous memory, never touched. */
static uint8_t *code_pages(size_t n)
{
	/* as the life cycle does before any write: a write /proc/self/mem
	 * refuses falls back to mprotect, which needs our fault handler */
	sp_patch_set_fault_handler(sp_trap_install);
	void *p = mmap(NULL, n * PG, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

static bool resident(const uint8_t *page)
{
	unsigned char v = 0;
	cr_assert_eq(mincore((void *)page, PG, &v), 0);
	return v & 1;
}

static bool all(const uint8_t *p, size_t n, uint8_t b)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != b)
			return false;
	return true;
}

Test(later, deferred_under_a_hold_until_the_flush)
{
	uint8_t *c = code_pages(1);
	uint8_t bytes[32];
	memset(bytes, 0xc3, sizeof(bytes));
	bool failed = false;
	sp_patch_hold();
	cr_assert_eq(sp_patch_write_later((uintptr_t)c + 16, bytes, sizeof(bytes), &failed), 0);
	cr_assert(all(c + 16, sizeof(bytes), 0), "written before the flush");
	sp_patch_flush_later();
	cr_assert(all(c + 16, sizeof(bytes), 0xc3));
	cr_assert(all(c, 16, 0) && all(c + 48, PG - 48, 0), "bytes outside the piece changed");
	cr_assert_not(failed);
	sp_patch_release();
}

Test(later, the_last_release_flushes)
{
	uint8_t *c = code_pages(1);
	uint8_t b = 0x90;
	sp_patch_hold();
	sp_patch_hold();
	cr_assert_eq(sp_patch_write_later((uintptr_t)c, &b, 1, NULL), 0);
	sp_patch_release();
	cr_assert_eq(c[0], 0, "flushed by a nested release");
	sp_patch_release();
	cr_assert_eq(c[0], 0x90);
}

Test(later, without_a_hold_written_at_once)
{
	uint8_t *c = code_pages(1);
	uint8_t b[3] = { 1, 2, 3 };
	cr_assert_eq(sp_patch_write_later((uintptr_t)c + 100, b, 3, NULL), 0);
	cr_assert(c[100] == 1 && c[101] == 2 && c[102] == 3);
}

Test(later, pieces_over_pages_written_and_gaps_kept_untouched_pages_left)
{
	/* pages 0-1 and 3-4 hold pieces, page 2 none; page 5 none either */
	uint8_t *c = code_pages(6);
	static uint8_t src[64][200];
	uintptr_t at[64];
	size_t n = 0;
	sp_patch_hold();
	/* out of order, with gaps, one piece across the 0/1 boundary */
	const size_t offs[] = { 3 * PG + 40, 10, PG - 50, 4 * PG + 3000, 300, PG + 1000, 3 * PG + 600 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++, n++) {
		memset(src[n], (int)(0x10 + n), sizeof(src[n]));
		at[n] = (uintptr_t)c + offs[i];
		cr_assert_eq(sp_patch_write_later(at[n], src[n], sizeof(src[n]), NULL), 0);
	}
	/* a byte between two pieces changed after they were kept: the
	 * flush reads the gap as it is then */
	uint8_t mark = 0x77;
	cr_assert_eq(sp_patch_write((uintptr_t)c + 250, &mark, 1), 0);
	sp_patch_flush_later();
	for (size_t i = 0; i < n; i++)
		cr_assert(all((const uint8_t *)at[i], sizeof(src[i]), (uint8_t)(0x10 + i)), "piece %zu", i);
	cr_assert_eq(c[250], 0x77, "a gap byte was not kept");
	cr_assert(all(c, 10, 0) && all(c + 210, 40, 0) && all(c + 251, 49, 0));
	cr_assert_not(resident(c + 2 * PG), "a page without a piece was read or written");
	cr_assert_not(resident(c + 5 * PG));
	sp_patch_release();
}

Test(later, a_piece_that_cannot_be_written_says_so)
{
	uint8_t *c = code_pages(3);
	cr_assert_eq(munmap(c + PG, PG), 0);   /* a hole: nothing to write to */
	uint8_t a[16], b[16], d[16];
	memset(a, 0xaa, 16);
	memset(b, 0xbb, 16);
	memset(d, 0xdd, 16);
	bool fa = false, fb = false, fd = false;
	sp_patch_hold();
	sp_patch_write_later((uintptr_t)c + PG - 32, a, 16, &fa);
	sp_patch_write_later((uintptr_t)c + PG + 64, b, 16, &fb);
	sp_patch_write_later((uintptr_t)c + 2 * PG + 8, d, 16, &fd);
	sp_patch_flush_later();
	sp_patch_release();
	cr_assert(fb, "the unmapped piece's failure was not reported");
	cr_assert(!fa && !fd);
	cr_assert(all(c + PG - 32, 16, 0xaa) && all(c + 2 * PG + 8, 16, 0xdd));
}

Test(many, spans_of_neighbouring_pages)
{
	uint8_t *c = code_pages(8);
	/* pages 0, 1, 2 (a run), page 3 none, pages 4 and 6 (apart) */
	const size_t offs[] = { 5, 700, PG - 2, PG + 2000, 2 * PG + 4000, 4 * PG + 1, 6 * PG + 9 };
	enum { N = sizeof(offs) / sizeof(offs[0]) };
	uint8_t val[N][4];
	struct sp_patch_piece p[N];
	int rcs[N];
	for (size_t i = 0; i < N; i++) {
		memset(val[i], (int)(0xc0 + i), 4);
		p[i] = (struct sp_patch_piece){ (uintptr_t)c + offs[i], val[i], 4 };
		rcs[i] = -1;
	}
	sp_patch_write_many(p, N, rcs);
	for (size_t i = 0; i < N; i++) {
		cr_assert_eq(rcs[i], 0, "piece %zu", i);
		cr_assert(all(c + offs[i], 4, (uint8_t)(0xc0 + i)), "piece %zu", i);
	}
	cr_assert(all(c + 9, 691, 0) && all(c + PG + 2, 1998, 0));
	cr_assert_not(resident(c + 3 * PG), "a page without a piece was read or written");
	cr_assert_not(resident(c + 5 * PG));
	cr_assert_not(resident(c + 7 * PG));
}

Test(many, a_big_batch_over_many_pages)
{
	/* 96 pieces over pages 0-5 (one write spans them), none on page 6,
	 * 32 on pages 7-8 */
	uint8_t *c = code_pages(10);
	enum { N = 128 };
	static uint8_t val[N];
	struct sp_patch_piece p[N];
	int rcs[N];
	size_t off[N];
	for (size_t i = 0; i < N; i++) {
		off[i] = i < 96 ? i * (6 * PG / 96) + 7 : 7 * PG + (i - 96) * (2 * PG / 32) + 3;
		val[i] = (uint8_t)(i + 1);
		p[i] = (struct sp_patch_piece){ (uintptr_t)c + off[i], &val[i], 1 };
		rcs[i] = -1;
	}
	sp_patch_write_many(p, N, rcs);
	for (size_t i = 0; i < N; i++) {
		cr_assert_eq(rcs[i], 0, "piece %zu", i);
		cr_assert_eq(c[off[i]], (uint8_t)(i + 1), "piece %zu", i);
		cr_assert_eq(c[off[i] + 1], 0, "the byte after piece %zu", i);
	}
	cr_assert_not(resident(c + 6 * PG), "a page without a piece was read or written");
	cr_assert_not(resident(c + 9 * PG));
}

/* The descriptor of ours naming /proc/PID/mem, or -1. */
static int mem_descriptor(void)
{
	char want[64], path[64], got[64];
	snprintf(want, sizeof(want), "/proc/%d/mem", (int)getpid());
	for (int fd = 3; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, got, sizeof(got) - 1);
		if (n > 0 && (got[n] = 0, !strcmp(got, want)))
			return fd;
	}
	return -1;
}

Test(held, a_program_file_at_the_number_is_left_alone)
{
	uint8_t *c = code_pages(1);
	uint8_t a = 0x90, b = 0xcc;
	sp_patch_hold();
	cr_assert_eq(sp_patch_write((uintptr_t)c, &a, 1), 0);
	int mem = mem_descriptor();
	cr_assert_geq(mem, 0, "no /proc/self/mem held");
	/* the program's closefrom, then a file of its own at that number */
	int f = memfd_create("program", MFD_CLOEXEC);
	cr_assert_geq(f, 0);
	cr_assert_eq(dup2(f, mem), mem);
	close(f);
	cr_assert_eq(sp_patch_write((uintptr_t)c + 1, &b, 1), 0);
	sp_patch_release();
	cr_assert(c[0] == 0x90 && c[1] == 0xcc, "the code was not written");
	struct stat st;
	cr_assert_eq(fstat(mem, &st), 0, "the program's file was closed");
	cr_assert_eq(st.st_size, 0, "the program's file was written");
	close(mem);
}
