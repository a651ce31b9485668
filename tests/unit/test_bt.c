/* Tests for the bpftrace language modules (the bt_ modules of runtime/, issue 18) below
 * the e2e golden comparisons: the parse of the existing specs is untouched
 * by a program; a program's items and errors; bounded maps with a dropped
 * count; delete and the same key's return; bpftrace 0.17's buckets and
 * labels at the edges the workload does not reach (negative values,
 * values past 2^32, K/M suffixes, lhist's open ends). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bt.h"
#include "heap.h"
#include "bt_unit.h"
#include "bt_jitplan.h"
#include "bt_parts.h"
#include "bt_shard.h"
#include "ctx.h"
#include "spec.h"
#include "tstate.h"

static char *output(struct bt_program *p)
{
	struct bt_buf b = { 0 };
	bt_print_all(&b, p);
	return b.p;
}

Test(bt, specs_without_a_brace_parse_as_before)
{
	struct sp_spec s = { 0 };
	cr_assert(sp_spec_parse("uprobe:libc:malloc=latency; uretprobe:libc:free", &s) == 0);
	cr_assert_eq(s.n_items, 2);
	cr_expect_eq(s.items[0].action, SP_ACT_LATENCY);
	cr_expect_null(s.items[0].program);
	cr_expect_eq(s.items[1].kind, SP_KIND_URETPROBE);
	sp_spec_free(&s);
}

Test(bt, a_program_makes_one_item_per_probe)
{
	struct sp_spec s = { 0 };
	cr_assert(sp_spec_parse("uprobe:libc:malloc, uprobe:libc:calloc /arg0 > 1/ { @c = count(); }\n"
				"uretprobe:libc:malloc { @r = hist(retval); }", &s) == 0);
	cr_assert_eq(s.n_errors, 0);
	cr_assert_eq(s.n_items, 3);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(s.items[i].action, SP_ACT_PROGRAM);
	cr_expect_str_eq(s.items[1].name, "calloc");
	cr_expect_eq(s.items[2].kind, SP_KIND_URETPROBE);
	cr_expect(s.items[2].program->is_return);
	cr_expect(s.items[0].program == s.items[1].program);
	cr_expect(s.items[0].program->fast, "an integer-only block is fast");
	sp_spec_free(&s);
}

Test(bt, a_bad_program_makes_no_item_and_one_positioned_error)
{
	struct sp_spec s = { 0 };
	cr_assert(sp_spec_parse("uprobe:libc:malloc { @c = count(); }\nuprobe:libc:free { @c = hist(arg0); }", &s) == 0);
	cr_expect_eq(s.n_items, 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect(strstr(s.errors[0].message, "line 2, column 20: map @c: used with two different types"),
		  "%s", s.errors[0].message);
	sp_spec_free(&s);
}

Test(bt, strings_make_a_block_slow)
{
	struct bt_program *p = compile("uprobe:libc:open { @f[str(arg0)] = count(); }");
	cr_expect_not(p->blocks[0].fast);
	bt_program_release(p);
}

Test(bt, a_full_map_counts_dropped_updates)
{
	struct bt_program *p = compile("uprobe:libc:malloc { @m[arg0] = count(); }");
	struct bt_map *m = p->maps;
	uint64_t k;
	for (k = 0; k < BT_MAP_CAP; k++)
		cr_assert_not_null(bt_map_lookup(m, &k, true));
	cr_expect_null(bt_map_lookup(m, &k, true), "past the capacity: refused");
	cr_expect_eq(atomic_load(&m->dropped), 1);
	k = 5;
	cr_expect_not_null(bt_map_lookup(m, &k, true), "a key it has still updates");
	cr_expect_eq(atomic_load(&m->dropped), 1);
	bt_program_release(p);
}

/* A writer held in the middle of inserting a key, as a preempted thread
 * is (the e2e/bt_compiled flake: under load the first hits of a new
 * thread found the key being inserted by another, gave up after a short
 * spin and were dropped as if the map were full).  The value's second page
 * is made inaccessible: the writer, between taking the slot and making it
 * live, faults there; its SIGSEGV handler stays away HOLD_MS, gives the
 * page back and returns. */
static long held_ms;
static unsigned char *held_page;
static struct bt_map *held_map;
static uint64_t held_key;
static long held_nested_ms = -1;
static uint64_t *held_nested = (uint64_t *)1;
static bool held_nest;

static long ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void hold_writer(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	if (held_nest) {   /* a hit of the writer's own thread, nested in its insert */
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		held_nested = bt_map_lookup(held_map, &held_key, true);
		held_nested_ms = ms_since(&t0);
	}
	struct timespec ts = { held_ms / 1000, held_ms % 1000 * 1000000L };
	nanosleep(&ts, NULL);
	mprotect(held_page, 4096, PROT_READ | PROT_WRITE);
}

static void *insert_held(void *v)
{
	*(uint64_t **)v = bt_map_lookup(held_map, &held_key, true);
	return NULL;
}

/* A key of M whose slot's value crosses a page boundary after the slot's
 * state word and key: that page's address in M, the slot's state word in
 * *STATE.  SCRATCH: a map of the same shape (the slot is found by
 * inserting there). */
static unsigned char *key_across_pages(struct bt_map *m, struct bt_map *scratch, _Atomic uint64_t **state)
{
	for (held_key = 0; held_key < BT_MAP_CAP; held_key++) {
		long i = bt_map_slot(scratch, &held_key, true);
		cr_assert(i >= 0);
		size_t start = (size_t)i * m->slot_size, page = (start + 16 + 4095) & ~(size_t)4095;
		if (page < start + m->slot_size && bt_map_slot(scratch, &held_key, false) == i) {
			*state = (_Atomic uint64_t *)(void *)(m->slots + start);
			return m->slots + page;
		}
	}
	cr_assert_fail("no slot crosses a page");
	return NULL;
}

/* Hold a writer inserting a key of a fresh hist map for MS; NEST: its own
 * thread looks the key up while held.  The writer's thread, its result in
 * *GOT. */
static struct bt_program *hold_insert(long ms, bool nest, pthread_t *writer, uint64_t **got, _Atomic uint64_t **state)
{
	held_ms = ms;
	struct bt_program *p = compile("uprobe:libc:malloc { @h[arg0] = hist(arg1); }");
	struct bt_program *scratch = compile("uprobe:libc:malloc { @h[arg0] = hist(arg1); }");
	held_map = p->maps;
	held_page = key_across_pages(p->maps, scratch->maps, state);
	bt_program_release(scratch);
	held_nest = nest;
	struct sigaction sa = { .sa_sigaction = hold_writer, .sa_flags = SA_SIGINFO | SA_NODEFER };
	sigaction(SIGSEGV, &sa, NULL);
	cr_assert(mprotect(held_page, 4096, PROT_NONE) == 0);
	cr_assert(pthread_create(writer, NULL, insert_held, got) == 0);
	while (atomic_load(*state) == 0)   /* the writer took the slot */
		sched_yield();
	return p;
}

Test(bt, a_key_being_inserted_by_another_thread_is_waited_for)
{
	pthread_t writer;
	uint64_t *by_writer = NULL;
	_Atomic uint64_t *state;
	struct bt_program *p = hold_insert(BT_MAP_BUSY_WAIT_MS / 2, false, &writer, &by_writer, &state);
	uint64_t *v = bt_map_lookup(held_map, &held_key, true);
	pthread_join(writer, NULL);
	cr_expect_not_null(v, "the update waited for the writer, not dropped");
	cr_expect_eq(v, by_writer, "the same slot as the writer's");
	cr_expect_eq(atomic_load(&held_map->dropped) + atomic_load(&held_map->unfinished), 0);
	cr_expect_eq(atomic_load(&held_map->used), 1, "the key inserted once");
	bt_program_release(p);
}

Test(bt, a_key_whose_insert_does_not_end_is_not_waited_for_forever)
{
	/* the writer's own thread (a signal handler's hit inside its insert)
	 * drops the update at once; another waits BT_MAP_BUSY_WAIT_MS, then
	 * drops it, and the hits after it at once; the writer still ends */
	pthread_t writer;
	uint64_t *by_writer = NULL;
	_Atomic uint64_t *state;
	struct bt_program *p = hold_insert(3 * BT_MAP_BUSY_WAIT_MS, true, &writer, &by_writer, &state);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_null(bt_map_lookup(held_map, &held_key, true), "dropped after the wait");
	long first = ms_since(&t0);
	cr_expect(first >= BT_MAP_BUSY_WAIT_MS && first < 2 * BT_MAP_BUSY_WAIT_MS, "waited %ld ms", first);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_expect_null(bt_map_lookup(held_map, &held_key, true), "dropped");
	cr_expect(ms_since(&t0) < BT_MAP_BUSY_WAIT_MS / 2, "at once: %ld ms", ms_since(&t0));
	pthread_join(writer, NULL);
	cr_expect_null(held_nested, "the writer's own thread drops its nested update");
	cr_expect(held_nested_ms >= 0 && held_nested_ms < BT_MAP_BUSY_WAIT_MS / 2, "at once (%ld ms)", held_nested_ms);
	cr_expect_not_null(by_writer, "the writer's insert ends");
	cr_expect_eq(bt_map_lookup(held_map, &held_key, true), by_writer, "and the key updates again");
	cr_expect_eq(atomic_load(&held_map->unfinished), 3);
	cr_expect_eq(atomic_load(&held_map->dropped), 0, "not counted as a full map's");
	bt_program_release(p);
}

/* Keyed per-thread parts (bt_shard.h): a print merges the table and
 * every part's words for the same slot, into a copy; nothing is written
 * back, so a second print (or the launcher's, after a SIGKILL) gives the
 * same figures. */
Test(bt, keyed_parts_merge_with_the_table_at_print)
{
	struct bt_program *p = compile("uprobe:libc:malloc { @k[arg0] = count(); @m[arg0] = max(arg1); }");
	struct bt_map *k = p->maps, *mx = k->next;   /* name order: @k, @m */
	cr_assert(bt_jit_map_shardable(p, k) && bt_jit_map_shardable(p, mx));
	enum { PARTS = 3 };
	unsigned char *mem[2];
	struct bt_map *ms[2] = { k, mx };
	for (int i = 0; i < 2; i++) {
		size_t part = bt_shard_part_bytes(ms[i], true);
		mem[i] = mmap(NULL, PARTS * part, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert(mem[i] != MAP_FAILED);
		cr_assert(bt_shards_attach(ms[i], mem[i], part, PARTS, true) == 0);
	}
	uint64_t a = 7, b = 9;
	long sa = bt_map_slot(k, &a, true), sb = bt_map_slot(k, &b, true);
	cr_assert(sa >= 0 && sb >= 0);
	bt_map_value(k, (size_t)sa)[0] = 1;          /* a thread without a part */
	bt_shard_words(k, 0, (size_t)sa)[0] = 10;
	bt_shard_words(k, 2, (size_t)sa)[0] = 100;
	bt_shard_words(k, 1, (size_t)sb)[0] = 5;
	long m7 = bt_map_slot(mx, &a, true);
	bt_map_value(mx, (size_t)m7)[0] = 3;
	bt_shard_words(mx, 1, (size_t)m7)[0] = 42;
	bt_shard_words(mx, 2, (size_t)m7)[0] = 17;
	const char *want = "\n\n@k[9]: 5\n@k[7]: 111\n@m[7]: 42\n";
	char *out = output(p);
	cr_expect_str_eq(out, want);
	sp_free(out);
	out = output(p);
	cr_expect_str_eq(out, want, "a print writes nothing back");
	sp_free(out);
	cr_expect_eq(bt_map_value(k, (size_t)sa)[0], 1);
	for (int i = 0; i < 2; i++) {
		munmap(mem[i], PARTS * ms[i]->shards->stride);
		bt_shards_free(ms[i]);
	}
	bt_program_release(p);
}

/* A keyed map's parts are mapped one by one, at the first update by a
 * thread on the part's stripe (btpartmem.h), not all at attach (issue 13:
 * a hist's 15 parts reserved 64 MiB of address space in every process):
 * attached, no part is mapped and the address space did not grow by one
 * hist part; one thread's updates map its own parts only; THREADS threads'
 * updates print what one table updated alone does, byte for byte; a fork
 * child starts with no part mapped and prints its own updates only. */
enum { PART_THREADS = 4, PART_CALLS = 4000 };
static const char part_prog[] = "uprobe:libc:malloc { @k[arg0] = count(); @h[arg0] = hist(arg1); }";

static long vm_size_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

struct part_run {
	struct bt_program *p;
	int calls;
	int stripe;   /* the thread's, where its parts are */
};

/* The block run as a hit runs it: arg0 = i & 7, arg1 = i. */
static void *part_updates(void *arg)
{
	struct part_run *r = arg;
	r->stripe = sp_tstate_stripe();
	struct selfprobe_regs regs = { 0 };
	struct selfprobe_ctx ctx = { .regs = &regs };
	for (int i = 0; i < r->calls; i++) {
		regs.rdi = (uint64_t)(i & 7);
		regs.rsi = (uint64_t)i;
		bt_run(&r->p->blocks[0], &ctx);
	}
	return NULL;
}

static int parts_mapped(const struct bt_map *m, int *which)
{
	int n = 0;
	for (int i = 0; i < m->shards->n; i++)
		if (bt_shard_part(m->shards, i)) {
			n++;
			*which = i;
		}
	return n;
}

/* P's maps as a single table updated by the calling thread alone
 * (TIMES times the threads' calls) print them. */
static char *one_table_output(int times)
{
	struct bt_program *ref = compile(part_prog);
	struct part_run r = { ref, PART_CALLS, -1 };
	for (int t = 0; t < times; t++)
		part_updates(&r);
	char *out = output(ref);
	bt_program_release(ref);
	return out;
}

Test(bt, keyed_parts_are_mapped_at_their_threads_first_update)
{
	cr_assert(sp_tstate_init() == 0);
	struct bt_program *p = compile(part_prog);
	struct bt_map *h = p->maps, *k = h->next;   /* name order: @h, @k */
	long before = vm_size_kb();
	sp_bt_parts_give(p);
	long after = vm_size_kb();
	cr_assert(h->shards && k->shards, "both maps split");
	size_t part = bt_shard_part_bytes(h, true);
	cr_expect_eq(h->shards->n, 15, "a hist: 15 parts of %zu bytes", part);
	cr_expect((size_t)(after - before) * 1024 < part, "attached: VmSize %ld -> %ld kB, not one part more", before,
		  after);
	int which = -1;
	cr_expect_eq(parts_mapped(h, &which) + parts_mapped(k, &which), 0, "attached: no part mapped");

	struct part_run one = { p, PART_CALLS, -1 };
	pthread_t t;
	cr_assert(pthread_create(&t, NULL, part_updates, &one) == 0);
	pthread_join(t, NULL);
	cr_assert(one.stripe >= 0 && one.stripe < 15);
	for (struct bt_map *m = p->maps; m; m = m->next) {
		cr_expect_eq(parts_mapped(m, &which), 1, "%s: one thread's part only", m->name);
		cr_expect_eq(which, one.stripe, "%s: its own stripe's", m->name);
		unsigned char vec;
		cr_expect_eq(mincore(bt_shard_part(m->shards, one.stripe), 4096, &vec), 0, "%s: mapped", m->name);
	}

	struct part_run many[PART_THREADS];
	pthread_t ts[PART_THREADS];
	for (int i = 0; i < PART_THREADS; i++) {
		many[i] = (struct part_run){ p, PART_CALLS, -1 };
		cr_assert(pthread_create(&ts[i], NULL, part_updates, &many[i]) == 0);
	}
	for (int i = 0; i < PART_THREADS; i++)
		pthread_join(ts[i], NULL);
	char *got = output(p), *want = one_table_output(1 + PART_THREADS);
	cr_expect_str_eq(got, want, "the threads' parts and the table merged, exact");
	sp_free(got);
	sp_free(want);

	fflush(NULL);
	pid_t child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		sp_tstate_atfork_child();
		sp_bt_parts_atfork_child(p);
		/* the tables are the parent's (bt_run.c clears them in a
		 * child): the parts alone are compared */
		bt_map_clear(h);
		bt_map_clear(k);
		int fresh = parts_mapped(h, &which) + parts_mapped(k, &which) == 0;
		struct part_run c = { p, PART_CALLS, -1 };
		part_updates(&c);
		char *cg = output(p), *cw = one_table_output(1);
		_exit(fresh && strcmp(cg, cw) == 0 ? 0 : fresh ? 2 : 1);
	}
	int status;
	cr_assert(waitpid(child, &status, 0) == child);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "fork child: %s", WIFEXITED(status) && WEXITSTATUS(status) == 1 ? "parts still mapped"
				    : WIFEXITED(status) && WEXITSTATUS(status) == 2 ? "its print is not its own updates"
				    : "crashed");
	got = output(p);
	want = one_table_output(1 + PART_THREADS);
	cr_expect_str_eq(got, want, "the parent's maps unchanged by its child");
	sp_free(got);
	sp_free(want);
	bt_program_release(p);
}

/* A part that cannot be mapped (here: parts said to be in a launcher's
 * file this process has none of) leaves its threads on the table, which
 * they update atomically: nothing is lost, and no hit tries again. */
Test(bt, a_part_that_cannot_be_mapped_leaves_its_thread_on_the_table)
{
	cr_assert(sp_tstate_init() == 0);
	struct bt_program *p = compile(part_prog);
	for (struct bt_map *m = p->maps; m; m = m->next)
		cr_assert(bt_shards_attach_lazy(m, bt_shard_part_bytes(m, true), 4, 4096) == 0);
	struct part_run r[2] = { { p, PART_CALLS, -1 }, { p, PART_CALLS, -1 } };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		cr_assert(pthread_create(&t[i], NULL, part_updates, &r[i]) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (struct bt_map *m = p->maps; m; m = m->next)
		for (int i = 0; i < 2; i++) {
			cr_assert(r[i].stripe >= 0 && r[i].stripe < 4);
			cr_expect_eq(atomic_load(&m->shards->parts[r[i].stripe]), BT_PART_REFUSED,
				     "%s: part %d marked refused", m->name, r[i].stripe);
		}
	char *got = output(p), *want = one_table_output(2);
	cr_expect_str_eq(got, want, "every update in the table");
	sp_free(got);
	sp_free(want);
	bt_program_release(p);
}

Test(bt, a_map_read_back_stays_one_table)
{
	struct bt_program *p = compile("uprobe:libc:malloc { @s[tid] = arg0; @c[tid] = count(); } "
				       "uretprobe:libc:malloc /@c[tid] > 1/ { delete(@s[tid]); }");
	for (struct bt_map *m = p->maps; m; m = m->next)
		cr_expect(!bt_jit_map_shardable(p, m), "%s is read or deleted: one table", m->name);
	bt_program_release(p);
}

Test(bt, delete_then_the_same_key_starts_from_zero)
{
	struct bt_program *p = compile("uprobe:libc:malloc { @m[arg0] = sum(arg1); }");
	struct bt_map *m = p->maps;
	uint64_t k = 42;
	uint64_t *v = bt_map_lookup(m, &k, true);
	*v = 7;
	bt_map_delete(m, &k);
	cr_expect_null(bt_map_lookup(m, &k, false));
	v = bt_map_lookup(m, &k, true);
	cr_assert_not_null(v);
	cr_expect_eq(*v, 0);
	char *out = output(p);
	cr_expect_str_eq(out, "\n\n@m[42]: 0\n");
	sp_free(out);
	bt_program_release(p);
}

Test(bt, hist_buckets_are_bpftrace_017s)
{
	cr_expect_eq(bt_hist_bucket(-5), 0);
	cr_expect_eq(bt_hist_bucket(0), 1);
	cr_expect_eq(bt_hist_bucket(1), 2);
	cr_expect_eq(bt_hist_bucket(2), 3);
	cr_expect_eq(bt_hist_bucket(1023), 11);
	cr_expect_eq(bt_hist_bucket(1024), 12);
	cr_expect_eq(bt_hist_bucket((int64_t)1 << 40), 33, "0.17's log2 stops at 2^31");
	cr_expect_eq(bt_lhist_bucket(-1, 0, 100, 10), 0);
	cr_expect_eq(bt_lhist_bucket(0, 0, 100, 10), 1);
	cr_expect_eq(bt_lhist_bucket(99, 0, 100, 10), 10);
	cr_expect_eq(bt_lhist_bucket(100, 0, 100, 10), 11);
	cr_expect_eq(bt_lhist_bucket(5000, 0, 100, 10), 11);
}

Test(bt, hist_and_lhist_labels)
{
	struct bt_program *p = compile("uprobe:libc:malloc { @h = hist(arg0); @l = lhist(arg0, 0, 2048, 1024); }");
	struct bt_map *h = p->maps, *l = p->maps->next;
	cr_assert_str_eq(h->name, "@h");
	uint64_t *hv = bt_map_lookup(h, NULL, true), *lv = bt_map_lookup(l, NULL, true);
	hv[0] = 1;                          /* (..., 0) */
	hv[bt_hist_bucket(1536)] = 4;       /* [1K, 2K) */
	hv[bt_hist_bucket(3 << 20)] = 2;    /* [2M, 4M) */
	lv[bt_lhist_bucket(1500, 0, 2048, 1024)] = 3;
	lv[bt_lhist_bucket(9999, 0, 2048, 1024)] = 1;
	char *out = output(p);
	const char *want =
		"\n\n@h: \n"
		"(..., 0)               1 |@@@@@@@@@@@@@                                       |\n"
		"[0]                    0 |                                                    |\n";   /* empty buckets inside the range print */
	cr_expect(strncmp(out, want, strlen(want)) == 0, "got:\n%s", out);
	cr_expect(strstr(out, "\n[1K, 2K)               4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"), "got:\n%s", out);
	cr_expect(strstr(out, "[2M, 4M)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"), "got:\n%s", out);
	cr_expect(strstr(out, "\n@l: \n[1K, 2K)               3 |"), "got:\n%s", out);
	cr_expect(strstr(out, "[2K, ...)              1 |"), "got:\n%s", out);
	sp_free(out);
	bt_program_release(p);
}

Test(bt, special_probes_make_no_item)
{
	struct sp_spec s = { 0 };
	cr_assert(sp_spec_parse("BEGIN { @b = 1; } uprobe:libc:malloc { @c = count(); } interval:ms:5 { @i = 1; }"
				" END { @e = 1; }", &s) == 0);
	cr_assert_eq(s.n_errors, 0, "%s", s.n_errors ? s.errors[0].message : "");
	cr_assert_eq(s.n_items, 1);
	struct bt_program *p = s.items[0].program->prog;
	cr_expect(p->has_special);
	cr_expect_eq(p->blocks[0].special, BT_BEGIN);
	cr_expect_eq(p->blocks[2].special, BT_INTERVAL);
	cr_expect_eq(p->blocks[2].interval_ns, 5000000);
	cr_expect_eq(p->blocks[3].special, BT_END);
	sp_spec_free(&s);
	int64_t ns;
	char e[120];
	cr_expect_eq(bt_special_probe("interval:hz:10", &ns, e, sizeof(e)), BT_INTERVAL);
	cr_expect_eq(ns, 100000000);
	cr_expect_eq(bt_special_probe("interval:us:10", &ns, e, sizeof(e)), -1, "under 1 ms");
	cr_expect_eq(bt_special_probe("interval:d:1", &ns, e, sizeof(e)), -1);
	cr_expect_eq(bt_special_probe("uprobe:libc:malloc", &ns, e, sizeof(e)), BT_PROBE_HIT);
}

/* No resolver registered here (as in the fuzzers): refused, positioned. */
Test(bt, args_without_a_dwarf_reader_is_an_error)
{
	struct sp_spec s = { 0 };
	bt_set_args_resolver(NULL);
	cr_assert(sp_spec_parse("uprobe:libc:malloc { @c[args->size] = count(); }", &s) == 0);
	cr_assert_eq(s.n_items, 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect(strstr(s.errors[0].message, "line 1, column 25: args.size: no DWARF reader here"), "%s", s.errors[0].message);
	sp_spec_free(&s);
}

static int fake_args(const char *object, const char *func, const char *param, int *index, bool *is_signed,
		     char *err, size_t errlen)
{
	(void)object;
	if (strcmp(func, "f") || strcmp(param, "n")) {
		snprintf(err, errlen, "no %s in %s", param, func);
		return -1;
	}
	*index = 2;
	*is_signed = true;
	return 0;
}

Test(bt, args_resolves_to_an_argument_register)
{
	bt_set_args_resolver(fake_args);
	struct bt_program *p = compile("uprobe:./app:f { @[args.n] = count(); }");
	struct bt_node *key = p->blocks[0].body->args[0]->a->args[0];
	cr_expect_eq(key->kind, BN_BUILTIN);
	cr_expect_eq(key->ival, BB_ARG0 + 2);
	cr_expect(key->is_signed);
	bt_program_release(p);
	struct sp_spec s = { 0 };
	cr_assert(sp_spec_parse("uprobe:./app:f { @[args.m] = count(); }", &s) == 0);
	cr_assert_eq(s.n_errors, 1);
	cr_expect(strstr(s.errors[0].message, "args.m: no m in f"), "%s", s.errors[0].message);
	sp_spec_free(&s);
	bt_set_args_resolver(NULL);
}

Test(bt, json_output_is_bpftrace_017s)
{
	struct bt_program *p = compile("uprobe:libc:malloc { @h = hist(arg0); @k[arg0, \"x\"] = sum(arg1); @st = stats(arg0); }");
	struct bt_map *h = p->maps, *k = h->next, *st = k->next;
	uint64_t *v = bt_map_lookup(h, "", true);
	v[bt_hist_bucket(40)] += 1;
	v[bt_hist_bucket(300)] += 3;
	unsigned char key[8 + BT_STR] = { 0 };
	key[0] = 2;
	key[8] = 'x';
	bt_map_lookup(k, key, true)[0] = 296;
	uint64_t *s = bt_map_lookup(st, "", true);
	s[0] = 6, s[1] = 14;
	struct bt_buf b = { 0 };
	bt_print_all_json(&b, p);
	cr_expect_str_eq(b.p, "\n\n"
		"{\"type\": \"hist\", \"data\": {\"@h\": [{\"min\": 32, \"max\": 63, \"count\": 1}, "
		"{\"min\": 64, \"max\": 127, \"count\": 0}, {\"min\": 128, \"max\": 255, \"count\": 0}, "
		"{\"min\": 256, \"max\": 511, \"count\": 3}]}}\n"
		"{\"type\": \"map\", \"data\": {\"@k\": {\"2,x\": 296}}}\n"
		"{\"type\": \"stats\", \"data\": {\"@st\": {\"count\": 6, \"average\": 2, \"total\": 14}}}\n");
	sp_free(b.p);
	struct bt_buf j = { 0 };
	bt_json_printf(&j, "a \"q\"\t\n", 7);
	cr_expect_str_eq(j.p, "{\"type\": \"printf\", \"data\": \"a \\\"q\\\"\\t\\n\"}\n");
	sp_free(j.p);
	bt_program_release(p);
}

/* lhist in -f json: its open ends carry one bound, the buckets between
 * the first and the last non-empty ones are all listed. */
Test(bt, json_lhist_has_its_open_ends)
{
	struct bt_program *p = compile("uprobe:libc:malloc { @l = lhist(arg0, 0, 30, 10); }");
	uint64_t *v = bt_map_lookup(p->maps, "", true);
	v[bt_lhist_bucket(-5, 0, 30, 10)] += 1;
	v[bt_lhist_bucket(15, 0, 30, 10)] += 2;
	v[bt_lhist_bucket(99, 0, 30, 10)] += 4;
	struct bt_buf b = { 0 };
	bt_print_all_json(&b, p);
	cr_expect_str_eq(b.p, "\n\n"
		"{\"type\": \"hist\", \"data\": {\"@l\": [{\"max\": -1, \"count\": 1}, "
		"{\"min\": 0, \"max\": 9, \"count\": 0}, {\"min\": 10, \"max\": 19, \"count\": 2}, "
		"{\"min\": 20, \"max\": 29, \"count\": 0}, {\"min\": 30, \"count\": 4}]}}\n");
	sp_free(b.p);
	bt_program_release(p);
}

Test(bt, a_stack_prints_as_bpftrace_prints_user_stacks)
{
	struct bt_program *p = compile("uprobe:libc:malloc { @[ustack(2)] = count(); @v[1] = ustack(2); }");
	bt_set_symbolizer(NULL);   /* no symbols: bare addresses, as bcc without them */
	struct bt_map *anon = p->maps, *v = anon->next;
	uint64_t st[3] = { 2, 0x401000, 0x401234 };
	bt_map_lookup(anon, st, true)[0] = 5;
	uint64_t one[1] = { 1 };
	memcpy(bt_map_lookup(v, one, true), st, sizeof(st));
	char *out = output(p);
	cr_expect_str_eq(out, "\n\n@[\n    0x401000\n    0x401234\n]: 5\n@v[1]: \n        0x401000\n        0x401234\n\n");
	sp_free(out);
	bt_program_release(p);
}
