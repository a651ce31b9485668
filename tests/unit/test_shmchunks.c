/* Tests for runtime/hot/shmchunks.c, the shared file's section arrays mapped
 * in chunks as they are taken (issue 13: a process mapped 107 MiB of probe
 * records at start, whatever it probed), and for shm.c's records on it:
 *   - every element, in any chunk, is at its place in the file's layout
 *     (the launcher maps the whole array and reads it there), those that
 *     straddle a page shared by two chunks included;
 *   - taking an element maps its chunk only: one small chunk for the first
 *     records, a few for thousands;
 *   - past the array, or when the mapping fails, no element (and a
 *     mapping that failed is tried again);
 *   - shm.c: once every record is taken, no record is given and the
 *     section's errors say so, once. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm.h"
#include "shmchunks.h"

#define OFF (3 * 4096)   /* the array's offset in the file */
#define ELEM 1720        /* a probe record's size then: not a divisor of a page */
#define CAP 5000

static int file(uint64_t bytes)
{
	int fd = memfd_create("sp-test-chunks", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)bytes), 0);
	return fd;
}

/* KiB of this process's address space mapped from the test's memfd. */
static unsigned long mapped_kib(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	cr_assert_not_null(f);
	char line[512];
	unsigned long kib = 0, lo, hi;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "memfd:sp-test-chunks") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			kib += (hi - lo) >> 10;
	fclose(f);
	return kib;
}

Test(shmchunks, elements_at_their_place_in_the_file)
{
	int fd = file(OFF + (uint64_t)CAP * ELEM + 4096);
	struct sp_chunks c;
	sp_chunks_init(&c, OFF, ELEM, CAP, 8);
	int err;
	for (uint32_t i = 0; i < CAP; i++) {
		unsigned char *e = sp_chunks_take(&c, i, fd, &err);
		cr_assert_not_null(e, "element %u: errno %d", i, -err);
		cr_assert_eq(sp_chunks_at(&c, i), e);
		memset(e, (int)(i % 251) + 1, ELEM);
	}
	const unsigned char *whole = mmap(NULL, OFF + (size_t)CAP * ELEM, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(whole, MAP_FAILED);
	for (uint32_t i = 0; i < OFF; i++)
		cr_assert_eq(whole[i], 0, "byte %u before the array written", i);
	for (uint32_t i = 0; i < CAP; i++)
		for (uint32_t b = 0; b < ELEM; b++)
			cr_assert_eq(whole[OFF + (size_t)i * ELEM + b], i % 251 + 1, "element %u, byte %u", i, b);
	cr_assert_null(sp_chunks_take(&c, CAP, fd, &err));
	cr_assert_eq(err, 0);
	cr_assert_null(sp_chunks_at(&c, CAP));
	sp_chunks_unmap(&c);
	cr_assert_null(sp_chunks_at(&c, 0));
	cr_assert_eq(mapped_kib(), (OFF + (size_t)CAP * ELEM + 4095) / 4096 * 4);   /* `whole` only */
}

Test(shmchunks, a_chunk_mapped_when_taken)
{
	/* the launcher's records: 65536 of them, 107 MiB */
	int fd = file(OFF + (uint64_t)SP_SHM_RECORDS * ELEM);
	struct sp_chunks c;
	sp_chunks_init(&c, OFF, ELEM, SP_SHM_RECORDS, 64);
	int err;
	cr_assert_eq(mapped_kib(), 0);
	cr_assert_null(sp_chunks_at(&c, 0));
	cr_assert_not_null(sp_chunks_take(&c, 0, fd, &err));
	unsigned long one = mapped_kib();
	cr_assert_leq(one, 64 * ELEM / 1024 + 8, "the first chunk maps %lu KiB", one);
	cr_assert_not_null(sp_chunks_at(&c, 63));
	cr_assert_null(sp_chunks_at(&c, 64));
	cr_assert_eq(mapped_kib(), one, "looking maps nothing");
	/* 3000 records (a whole libc): a few chunks, less than twice their size */
	for (uint32_t i = 0; i < 3000; i++)
		cr_assert_not_null(sp_chunks_take(&c, i, fd, &err));
	unsigned long many = mapped_kib();
	cr_assert_leq(many, 2 * 3000 * ELEM / 1024, "3000 records map %lu KiB", many);
	cr_assert_null(sp_chunks_at(&c, 5000));
	/* the last record, alone in the last chunk */
	char *last = sp_chunks_take(&c, SP_SHM_RECORDS - 1, fd, &err);
	cr_assert_not_null(last);
	last[ELEM - 1] = 1;
}

Test(shmchunks, a_failed_mapping_is_tried_again)
{
	int fd = file(OFF + (uint64_t)CAP * ELEM);
	struct sp_chunks c;
	sp_chunks_init(&c, OFF, ELEM, CAP, 8);
	int err;
	cr_assert_null(sp_chunks_take(&c, 100, -1, &err));
	cr_assert_eq(err, -EBADF);
	cr_assert_null(sp_chunks_at(&c, 100));
	cr_assert_not_null(sp_chunks_take(&c, 100, fd, &err));
	cr_assert_eq(err, 0);
}

Test(shmchunks, the_first_chunk_grows_to_hold_the_array)
{
	/* 16 chunks of one element each would hold 65535 */
	uint32_t cap = 1u << 20;
	int fd = file((uint64_t)cap * 8);
	struct sp_chunks c;
	sp_chunks_init(&c, 0, 8, cap, 1);
	int err;
	uint64_t *e = sp_chunks_take(&c, cap - 1, fd, &err);
	cr_assert_not_null(e, "errno %d", -err);
	*e = 42;
	cr_assert_null(sp_chunks_take(&c, cap, fd, &err));
}

Test(shmchunks, records_run_out_said_once)
{
	sp_shm_want_own();   /* a file of our own, with one section */
	uint64_t off;
	cr_assert_eq(sp_shm_stripes(&off), 0);
	uint32_t i;
	for (uint32_t n = 0; n < SP_SHM_RECORDS; n++) {
		struct sp_shm_record *r = sp_shm_record_next(&i, "uprobe:many");
		cr_assert_not_null(r, "record %u", n);
		cr_assert_eq(i, n);
		sp_shm_record_commit(i);
	}
	cr_assert_eq(sp_shm_errors_count(), 0);
	cr_assert_null(sp_shm_record_next(&i, "uprobe:one_too_many"));
	cr_assert_null(sp_shm_record_next(&i, "uprobe:two_too_many"));
	cr_assert_eq(sp_shm_errors_count(), 1);
	/* as the launcher reads it */
	uint32_t sec;
	int fd = sp_shm_handout(&sec);
	cr_assert_geq(fd, 0);
	const struct sp_shm_header *h = mmap(NULL, sizeof(*h), PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(h, MAP_FAILED);
	const struct sp_shm_section *s = mmap(NULL, SP_SHM_SECTION_STRIDE, PROT_READ, MAP_SHARED, fd,
					      (off_t)sp_shm_section_off(h, sec));
	cr_assert_neq(s, MAP_FAILED);
	cr_assert_eq(s->n_records, SP_SHM_RECORDS);
	const struct sp_shm_error *e = mmap(NULL, sizeof(*e), PROT_READ, MAP_SHARED, fd, (off_t)s->errors_off);
	cr_assert_neq(e, MAP_FAILED);
	cr_assert_str_eq(e->spec, "uprobe:one_too_many");
	cr_assert(strstr(e->message, "no record in the shared counters file (65536 a process at most)"), "%s",
		  e->message);
}
