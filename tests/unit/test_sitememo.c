/* Tests for the sites' decisions kept on disk (sitememo.c, replayed by
 * decide.c): libc's functions decided on its file's bytes, remembered,
 * stored, and replayed by a fresh index (as the next process would):
 *   - hit: every remembered site replays to the verdict sp_decide gives
 *     (path, reason, instruction, window, hop facts);
 *   - miss: a site never decided is not replayed;
 *   - stale: a site whose bytes are not those the decision was made on is
 *     decided afresh (counted), never replayed;
 *   - corrupt: a table that does not validate is not used at all; one
 *     that validates but whose recorded bytes or window shape lie (a
 *     checksum-valid forgery) replays nothing that does not match the
 *     code; random damage to a valid table never crashes the reader and
 *     never lets a record out of range through.
 * Each test runs in its own process (Criterion) with UPROBE_CACHE in a
 * fresh directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze.h"
#include "btindex.h"
#include "decide.h"
#include "objcache.h"
#include "sitememo.h"
#include "unit.h"

static struct sp_an_object *obj;
static char cache_dir[] = "/tmp/sp-sitememo-XXXXXX";

#define N_SITES 100000   /* every function of libc's that can be decided here */

static void setup(void)
{
	cr_assert_not_null(mkdtemp(cache_dir));
	setenv("UPROBE_CACHE", cache_dir, 1);
	cr_assert(sp_objcache_enabled(), "the cache is off in %s", cache_dir);
	Dl_info info;
	cr_assert(dladdr((void *)printf, &info) && info.dli_fname, "libc's file not found");
	char err[256];
	cr_assert_eq(sp_analyze_open(info.dli_fname, &obj, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(obj->elf->build_id_len, 0, "libc has no build ID");
}

static void teardown(void)
{
	sp_analyze_close(obj);
	unit_rmdir_flat(cache_dir);
}

TestSuite(sitememo, .init = setup, .fini = teardown);

/* libc's index as a process would get it (stored, or loaded), at bias 0:
 * each call a fresh one with a fresh memo. */
static struct sp_btindex *index_fresh(void)
{
	struct sp_objcode oc = { .elf = obj->elf, .path = obj->path, .n_text = obj->n_text };
	for (int i = 0; i < obj->n_text; i++) {
		oc.text[i].start = obj->text[i].vaddr;
		oc.text[i].end = obj->text[i].vaddr + obj->text[i].size;
		oc.text[i].bytes = obj->text[i].bytes;
	}
	bool loaded;
	struct sp_btindex *x = sp_btindex_build_cached(&oc, obj->elf->build_id, obj->elf->build_id_len, &loaded);
	cr_assert_not_null(x);
	cr_assert_not_null(sp_btindex_sitememo(x), "an index with a key has no site memo");
	return x;
}

/* The facts of the site at function I's entry (bias 0, the file's bytes),
 * CODE: its text's bytes, or a copy.  False when I is not a function to
 * decide here. */
static bool facts_of(size_t i, const struct sp_btindex *x, const uint8_t *code_or_null,
		     struct sp_site_facts *f)
{
	const struct sp_sym *s = &obj->elf->syms[i];
	if (!s->size || s->is_ifunc || (i && obj->elf->syms[i - 1].value == s->value))
		return false;
	size_t avail;
	sp_analyze_text(obj, s->value, &avail);
	if (avail < 32)
		return false;
	const struct sp_an_text *t = NULL;
	for (int k = 0; k < obj->n_text; k++)
		if (s->value >= obj->text[k].vaddr && s->value < obj->text[k].vaddr + obj->text[k].size)
			t = &obj->text[k];
	if (!t)
		return false;
	*f = (struct sp_site_facts){
		.site = s->value, .code = code_or_null ? code_or_null : t->bytes, .code_lo = t->vaddr,
		.code_len = t->size, .avail = avail, .func = s->value, .func_size = s->size,
		.limit = sp_elf_next_start(obj->elf, s->value), .idx = x,
		.landing_pads = obj->elf->has_except_table, .live = true,
	};
	return true;
}

static void same_verdict(const struct sp_verdict *a, const struct sp_verdict *b, const char *who)
{
	cr_expect_eq(a->path, b->path, "%s: path %d / replayed %d", who, a->path, b->path);
	cr_expect(!a->reason == !b->reason && (!a->reason || strcmp(a->reason, b->reason) == 0),
		  "%s: reason '%s' / replayed '%s'", who, a->reason ? a->reason : "-", b->reason ? b->reason : "-");
	cr_expect(a->resume == b->resume || (a->resume && b->resume && strcmp(a->resume, b->resume) == 0),
		  "%s: resume", who);
	cr_expect(a->insn.len == b->insn.len && memcmp(a->insn.bytes, b->insn.bytes, a->insn.len) == 0 &&
		  a->insn.cls == b->insn.cls && a->insn.addr == b->insn.addr, "%s: the site's instruction", who);
	cr_expect_eq(a->block, b->block, "%s: block", who);
	cr_expect_eq(a->first_len, b->first_len, "%s: first_len", who);
	cr_expect_eq(a->window_targets, b->window_targets, "%s: window targets", who);
	if (a->path == SP_PATH_JMP5) {
		cr_expect(a->w.len == b->w.len && a->w.n_insns == b->w.n_insns && a->w.flow_ends == b->w.flow_ends &&
			  a->w.site == b->w.site, "%s: the window's shape", who);
		for (int k = 0; k < a->w.n_insns && k < b->w.n_insns; k++)
			cr_expect(memcmp(&a->w.insns[k], &b->w.insns[k], sizeof(a->w.insns[k])) == 0,
				  "%s: window instruction %d differs", who, k);
	}
}

/* Decide the first N_SITES functions afresh and remember them; flush.
 * The number remembered. */
static size_t decide_and_store(void)
{
	struct sp_btindex *x = index_fresh();
	size_t n = 0;
	for (size_t i = 0; i < obj->elf->n_syms && n < N_SITES; i++) {
		struct sp_site_facts f;
		if (!facts_of(i, x, NULL, &f))
			continue;
		struct sp_verdict v;
		cr_assert_neq(sp_decide_replay(&f, &v), 0, "a cold memo replayed a site");
		sp_decide(&f, &v);
		sp_decide_remember(&f, &v);
		n += v.path == SP_PATH_JMP5 || v.path == SP_PATH_INT3;
	}
	/* an int3 decision with its reason, whatever the object (under ASan
	 * printf is the sanitizer's, and its library may have none): a
	 * function entry with a short first instruction, as the site of a
	 * function that ends after it (another key: no window fits) */
	for (size_t i = 0; i < obj->elf->n_syms; i++) {
		struct sp_site_facts f;
		if (!facts_of(i, x, NULL, &f))
			continue;
		struct sp_verdict v;
		sp_decide(&f, &v);
		if (v.path != SP_PATH_JMP5 || v.insn.len >= SP_JMP_LEN)
			continue;
		f.func_size = v.insn.len;   /* the function ends after it: no window */
		sp_decide(&f, &v);
		if (v.path != SP_PATH_INT3)
			continue;
		sp_decide_remember(&f, &v);
		n++;
		break;
	}
	struct sp_sitememo_stats st;
	sp_sitememo_stats(sp_btindex_sitememo(x), &st);
	cr_assert_eq(st.added, n, "%zu decisions, %zu remembered", n, st.added);
	sp_sitememo_flush(sp_btindex_sitememo(x));
	sp_btindex_free(x);
	return n;
}

/* The stored table: its file, and its key from its name. */
static void table_file(char *path, size_t len, struct sp_objcache_key *key)
{
	DIR *d = opendir(cache_dir);
	path[0] = '\0';
	for (struct dirent *e; d && (e = readdir(d));)
		if (strncmp(e->d_name, "site-", 5) == 0 && !strstr(e->d_name, ".tmp")) {
			snprintf(path, len, "%s/%s", cache_dir, e->d_name);
			unsigned long long a, b;
			cr_assert_eq(sscanf(e->d_name + 5, "%16llx%16llx", &a, &b), 2);
			key->h[0] = a;
			key->h[1] = b;
		}
	closedir(d);
	cr_assert(path[0], "no site- entry in %s", cache_dir);
}

/* The stored payload (a malloc'ed copy). */
static uint8_t *payload(size_t *len, struct sp_objcache_key *key)
{
	char path[512];
	table_file(path, sizeof(path), key);
	void *p = sp_objcache_load("site", key, len);
	cr_assert_not_null(p, "the stored table does not load");
	uint8_t *c = malloc(*len);
	memcpy(c, p, *len);
	sp_objcache_release(p, *len);
	return c;
}

Test(sitememo, stored_decisions_replay_as_decided)
{
	size_t n = decide_and_store();
	cr_assert_gt(n, 2000, "only %zu sites decided", n);
	struct sp_btindex *x = index_fresh();
	size_t replayed = 0, jmp = 0, int3 = 0;
	for (size_t i = 0; i < obj->elf->n_syms && replayed < n; i++) {
		struct sp_site_facts f;
		if (!facts_of(i, x, NULL, &f))
			continue;
		struct sp_verdict full, again;
		sp_decide(&f, &full);
		if (full.path != SP_PATH_JMP5 && full.path != SP_PATH_INT3)
			continue;
		/* the replay needs the site's first bytes only */
		uint8_t head[SP_DECIDE_REPLAY_BYTES];
		memcpy(head, f.code + (f.site - f.code_lo), sizeof(head));
		struct sp_site_facts g = f;
		g.code = head;
		g.code_lo = f.site;
		g.code_len = sizeof(head);
		cr_assert_eq(sp_decide_replay(&g, &again), 0, "%s: not replayed", obj->elf->syms[i].name);
		same_verdict(&full, &again, obj->elf->syms[i].name);
		replayed++;
		jmp += full.path == SP_PATH_JMP5;
		int3 += full.path == SP_PATH_INT3;
	}
	for (size_t i = 0; i < obj->elf->n_syms; i++) {   /* the int3 decision */
		struct sp_site_facts f;
		if (!facts_of(i, x, NULL, &f))
			continue;
		struct sp_verdict full, again;
		sp_decide(&f, &full);
		if (full.path != SP_PATH_JMP5 || full.insn.len >= SP_JMP_LEN)
			continue;
		f.func_size = full.insn.len;
		sp_decide(&f, &full);
		if (full.path != SP_PATH_INT3)
			continue;
		cr_assert_eq(sp_decide_replay(&f, &again), 0, "the int3 decision was not replayed");
		same_verdict(&full, &again, "int3 by its limit");
		replayed++;
		int3++;
		break;
	}
	cr_expect_eq(replayed, n, "%zu of %zu replayed", replayed, n);
	cr_expect(jmp > 0 && int3 > 0, "both paths exercised: %zu jmp, %zu int3", jmp, int3);
	struct sp_sitememo_stats st;
	sp_sitememo_stats(sp_btindex_sitememo(x), &st);
	cr_expect(st.loaded == n && st.hits == n && st.stale == 0, "loaded %zu, hits %zu, stale %zu", st.loaded,
		  st.hits, st.stale);
	sp_btindex_free(x);
}

Test(sitememo, a_site_never_decided_is_not_replayed)
{
	decide_and_store();
	struct sp_btindex *x = index_fresh();
	struct sp_site_facts f;
	size_t i = 0;
	while (!facts_of(i, x, NULL, &f))
		i++;
	struct sp_verdict v;
	cr_assert_eq(sp_decide_replay(&f, &v), 0, "%s: its entry was not replayed", obj->elf->syms[i].name);
	/* its second instruction: a site never decided */
	struct sp_site_facts g = f;
	g.site += v.insn.len;
	cr_expect_neq(sp_decide_replay(&g, &v), 0, "a site never decided was replayed");
	/* the same site with another function extent is another decision */
	g = f;
	g.func_size++;
	cr_expect_neq(sp_decide_replay(&g, &v), 0, "a site replayed for another function size");
	g = f;
	g.limit++;
	cr_expect_neq(sp_decide_replay(&g, &v), 0, "a site replayed for another limit");
	struct sp_sitememo_stats st;
	sp_sitememo_stats(sp_btindex_sitememo(x), &st);
	cr_expect(st.hits == 1 && st.stale == 0, "hits %zu, stale %zu", st.hits, st.stale);
	sp_btindex_free(x);
}

Test(sitememo, changed_bytes_are_decided_afresh)
{
	decide_and_store();
	struct sp_btindex *x = index_fresh();
	size_t tried = 0;
	for (size_t i = 0; i < obj->elf->n_syms && tried < 50; i++) {
		struct sp_site_facts f;
		if (!facts_of(i, x, NULL, &f))
			continue;
		struct sp_verdict v;
		sp_decide(&f, &v);
		if (v.path != SP_PATH_JMP5 && v.path != SP_PATH_INT3)
			continue;
		/* one byte of the jmp's 5 changed (a nop for the first
		 * instruction's last byte would do as well: any change) */
		for (int b = 0; b < SP_JMP_LEN; b++) {
			uint8_t head[SP_DECIDE_REPLAY_BYTES];
			memcpy(head, f.code + (f.site - f.code_lo), sizeof(head));
			head[b] ^= 0x01;
			struct sp_site_facts g = f;
			g.code = head;
			g.code_lo = f.site;
			g.code_len = sizeof(head);
			cr_expect_neq(sp_decide_replay(&g, &v), 0, "%s: replayed with byte %d changed",
				      obj->elf->syms[i].name, b);
		}
		tried++;
	}
	struct sp_sitememo_stats st;
	sp_sitememo_stats(sp_btindex_sitememo(x), &st);
	cr_expect(tried == 50 && st.stale == tried * SP_JMP_LEN, "%zu sites, %zu stale", tried, st.stale);
	sp_btindex_free(x);
}

/* A table stored with valid checksum but DAMAGE applied to its records. */
static void store_damaged(void (*damage)(uint8_t *rec), size_t *n_recs)
{
	size_t len;
	struct sp_objcache_key key;
	uint8_t *p = payload(&len, &key);
	uint64_t n;
	memcpy(&n, p + 8, 8);
	/* the record layout (sitememo.c): 5 u64, 12 bytes, u32, the bytes */
	const size_t rec = 5 * 8 + 12 + 4 + SP_SITEMEMO_BYTES;
	for (uint64_t i = 0; i < n; i++)
		damage(p + 24 + i * rec);
	sp_objcache_store("site", &key, p, len);
	free(p);
	*n_recs = n;
}

static void flip_bytes(uint8_t *r) { r[5 * 8 + 16] ^= 0x80; }      /* the first recorded byte */
static size_t dropped;
static void drop_insn(uint8_t *r)   /* jmp5: one instruction fewer than its length holds */
{
	if (r[41] == 2 && r[45] > 1) {
		r[45]--;
		dropped++;
	}
}

Test(sitememo, recorded_bytes_that_lie_replay_nothing)
{
	decide_and_store();
	size_t n;
	store_damaged(flip_bytes, &n);
	struct sp_btindex *x = index_fresh();
	size_t replayed = 0;
	for (size_t i = 0; i < obj->elf->n_syms; i++) {
		struct sp_site_facts f;
		struct sp_verdict v;
		if (facts_of(i, x, NULL, &f) && sp_decide_replay(&f, &v) == 0)
			replayed++;
	}
	struct sp_sitememo_stats st;
	sp_sitememo_stats(sp_btindex_sitememo(x), &st);
	cr_expect(replayed == 0 && st.loaded == n && st.stale == st.hits && st.hits > 2000,
		  "forged bytes: %zu replayed, %zu loaded, %zu hits, %zu stale", replayed, st.loaded, st.hits,
		  st.stale);
	sp_btindex_free(x);
}

Test(sitememo, a_window_that_lies_replays_nothing)
{
	decide_and_store();
	size_t n;
	store_damaged(drop_insn, &n);
	cr_assert_gt(dropped, 100, "only %zu windows of several instructions", dropped);
	struct sp_btindex *x = index_fresh();
	for (size_t i = 0; i < obj->elf->n_syms; i++) {
		struct sp_site_facts f;
		struct sp_verdict v;
		if (facts_of(i, x, NULL, &f) && sp_decide_replay(&f, &v) == 0 && v.path == SP_PATH_JMP5)
			cr_expect_eq(v.w.n_insns, 1, "%s: a window of %d instructions replayed",
				     obj->elf->syms[i].name, v.w.n_insns);
	}
	/* exactly the damaged records were refused */
	struct sp_sitememo_stats st;
	sp_sitememo_stats(sp_btindex_sitememo(x), &st);
	cr_expect_eq(st.stale, dropped, "%zu windows damaged, %zu refused", dropped, st.stale);
	sp_btindex_free(x);
}

Test(sitememo, a_table_that_does_not_validate_is_not_used)
{
	decide_and_store();
	size_t len;
	struct sp_objcache_key key;
	uint8_t *good = payload(&len, &key);
	cr_assert_null(sp_sitememo_validate(good, len), "the stored table: %s", sp_sitememo_validate(good, len));
	const size_t rec = 5 * 8 + 12 + 4 + SP_SITEMEMO_BYTES;
	struct {
		const char *what;
		size_t at;       /* byte to change (from the payload's start) */
		uint8_t to;
		size_t cut;      /* or bytes to cut off the end */
	} cases[] = {
		{ "magic", 0, 'X', 0 },
		{ "a path out of range", 24 + 41, 7, 0 },
		{ "a length out of range", 24 + 48, 60, 0 },
		{ "a flag out of range", 24 + 40, 2, 0 },
		{ "order", 24 + rec + 0, 0, 0 },   /* the second record's site below the first's */
		{ "truncated", 0, 0, 8 },
		{ "the strings' last NUL", len - 1, 'x', 0 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint8_t *p = malloc(len);
		memcpy(p, good, len);
		size_t l = len - cases[c].cut;
		if (!cases[c].cut) {
			p[cases[c].at] = cases[c].to;
			if (c == 4)
				memset(p + 24 + rec, 0, 8);
		}
		cr_expect_not_null(sp_sitememo_validate(p, l), "%s: the table validates", cases[c].what);
		sp_objcache_store("site", &key, p, l);
		struct sp_btindex *x = index_fresh();
		cr_expect(!sp_sitememo_active(sp_btindex_sitememo(x)), "%s: the table was used", cases[c].what);
		sp_btindex_free(x);
		free(p);
	}
	free(good);
}

/* Random damage, as a fuzzer would do it: the reader never crashes, and
 * what it accepts is a table whose records are all in range (the
 * replay's own checks then see the bytes). */
Test(sitememo, random_damage_never_crashes_the_reader)
{
	decide_and_store();
	size_t len;
	struct sp_objcache_key key;
	uint8_t *good = payload(&len, &key);
	uint8_t *p = malloc(len);
	unsigned seed = 12345;
	size_t accepted = 0;
	for (int round = 0; round < 20000; round++) {
		memcpy(p, good, len);
		int flips = 1 + rand_r(&seed) % 4;
		for (int k = 0; k < flips; k++)
			p[rand_r(&seed) % len] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
		size_t l = rand_r(&seed) % 8 ? len : (size_t)rand_r(&seed) % (len + 1);
		accepted += sp_sitememo_validate(p, l) == NULL;
	}
	/* flips in the recorded bytes and the hop facts are in range: some
	 * damaged tables are accepted (and then checked against the code) */
	cr_expect(accepted > 0 && accepted < 20000, "%zu of 20000 damaged tables accepted", accepted);
	free(p);
	free(good);
}
