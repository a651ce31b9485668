/* The start-up cache's two newer kinds: an object's symbols (symcache.c,
 * kind "elfsym") and the jmp plans' function decodes (scanmemo.c, kind
 * "scan").  A stored entry gives exactly what reading the file gives; a
 * changed file, or a debug file installed or removed since, is never read
 * stale; a truncated, corrupt or foreign entry is refused with its reason
 * (in the report's errors when messages were asked for) and rebuilt, never
 * a crash.  Each test runs in its own process (Criterion) with
 * UPROBE_CACHE in a fresh directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elfsym.h"
#include "heap.h"
#include "jmpplan.h"
#include "log.h"
#include "objcache.h"
#include "probe.h"
#include "registry.h"
#include "scanmemo.h"
#include "symcache.h"
#include "unit.h"

#define FIXTURE TEST_LIB_DIR "/libsp_fixture.so"
#define FIXTURE_STRIPPED TEST_LIB_DIR "/libsp_fixture_stripped.so"

static char cache_dir[] = "/tmp/sp-symcache-XXXXXX";
static char work[512];
static char err[512];

static void rm_tree(const char *d)
{
	DIR *dir = opendir(d);
	for (struct dirent *e; dir && (e = readdir(dir));) {
		char p[1024];
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	if (dir)
		closedir(dir);
	rmdir(d);
}

/* The registry's sink, as the runtime installs it at its first attach. */
static void to_errors(const char *who, const char *message)
{
	sp_probe_error(who, "%s", message);
}

static void setup(void)
{
	sp_log_set_error_sink(to_errors);
	cr_assert_not_null(mkdtemp(cache_dir));
	setenv("UPROBE_CACHE", cache_dir, 1);   /* read once, at the cache's first use */
	cr_assert(sp_objcache_enabled(), "the cache is off in %s", cache_dir);
	snprintf(work, sizeof(work), "%s-work", cache_dir);
	cr_assert_eq(mkdir(work, 0700), 0);
	/* no machine debug files: the fixtures' symbols are their own */
	char root[600];
	snprintf(root, sizeof(root), "%s/debug", work);
	mkdir(root, 0700);
	sp_elf_set_debug_root(root);
}

static void teardown(void)
{
	sp_elf_set_debug_root(NULL);
	rm_tree(cache_dir);
	rm_tree(work);
}

TestSuite(symcache, .init = setup, .fini = teardown);


/* The entries of KIND in the cache: how many, the last one's path. */
static int entries(const char *kind, char *path, size_t len)
{
	int n = 0;
	DIR *d = opendir(cache_dir);
	for (struct dirent *e; d && (e = readdir(d));)
		if (!strncmp(e->d_name, kind, strlen(kind)) && e->d_name[strlen(kind)] == '-' &&
		    !strstr(e->d_name, ".tmp")) {
			n++;
			if (path)
				snprintf(path, len, "%s/%s", cache_dir, e->d_name);
		}
	if (d)
		closedir(d);
	return n;
}

static void assert_same(const struct sp_elf *a, const struct sp_elf *b)
{
	cr_assert_str_eq(a->path, b->path);
	cr_assert_eq(a->e_type, b->e_type);
	cr_assert_eq(a->has_symtab, b->has_symtab);
	cr_assert_eq(a->has_except_table, b->has_except_table);
	cr_assert_eq(a->build_id_len, b->build_id_len);
	cr_assert_arr_eq(a->build_id, b->build_id, a->build_id_len);
	cr_assert_eq(!a->debug_path, !b->debug_path);
	if (a->debug_path)
		cr_assert_str_eq(a->debug_path, b->debug_path);
	cr_assert_eq(a->n_segs, b->n_segs);
	for (size_t i = 0; i < a->n_segs; i++)
		cr_assert_arr_eq(&a->segs[i], &b->segs[i], sizeof(a->segs[i]));
	cr_assert_eq(a->n_ext, b->n_ext);
	for (size_t i = 0; i < a->n_ext; i++)
		cr_assert(a->ext[i].lo == b->ext[i].lo && a->ext[i].hi == b->ext[i].hi, "extent %zu", i);
	cr_assert_eq(a->n_syms, b->n_syms);
	for (size_t i = 0; i < a->n_syms; i++) {
		const struct sp_sym *x = &a->syms[i], *y = &b->syms[i];
		cr_assert_str_eq(x->name, y->name);
		cr_assert(x->value == y->value && x->size == y->size && x->is_ifunc == y->is_ifunc &&
			  x->is_global == y->is_global && x->in_dynsym == y->in_dynsym, "%s", x->name);
	}
	/* the queries agree too (hidden versions, aliases) */
	const struct sp_sym **ma, **mb;
	long na = sp_elf_match(a, "*", &ma), nb = sp_elf_match(b, "*", &mb);
	cr_assert_eq(na, nb);
	for (long i = 0; i < na; i++)
		cr_assert_str_eq(ma[i]->name, mb[i]->name);
	sp_free(ma);
	sp_free(mb);
}

static struct sp_elf *open_cached(const char *path)
{
	struct sp_elf *e = NULL;
	int rc = sp_elf_open_cached(path, &e, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s: %s", path, err);
	return e;
}

static struct sp_elf *open_plain(const char *path)
{
	struct sp_elf *e = NULL;
	int rc = sp_elf_open(path, &e, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s: %s", path, err);
	return e;
}

/* libc (with its debug file when installed): stored, loaded, the same. */
Test(symcache, libc_loaded_is_read)
{
	sp_elf_set_debug_root(NULL);
	Dl_info info;
	cr_assert(dladdr((void *)printf, &info) && info.dli_fname);
	struct sp_elf *read = open_plain(info.dli_fname);
	cr_assert_gt(read->n_ext, 0, "libc without .eh_frame extents: the round trip would not see them");
	struct sp_elf *first = open_cached(info.dli_fname);
	cr_assert_eq(entries("elfsym", NULL, 0), 1, "no entry stored");
	struct sp_elf *second = open_cached(info.dli_fname);
	assert_same(read, first);
	assert_same(read, second);
	sp_elf_close(read);
	sp_elf_close(first);
	sp_elf_close(second);
}

/* A file replaced at the same path (other content, other size and mtime)
 * is read again, never answered from the old entry. */
Test(symcache, changed_file_is_read_again)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/lib.so", work);
	unit_copy_file(FIXTURE, path);
	struct sp_elf *a = open_cached(path);
	cr_assert_not_null(sp_elf_lookup(a, "fixture_local_helper"), "the unstripped copy has its locals");
	sp_elf_close(a);
	unit_copy_file(FIXTURE_STRIPPED, path);   /* rewritten in place: same inode */
	struct sp_elf *b = open_cached(path), *want = open_plain(path);
	cr_assert_null(sp_elf_lookup(b, "fixture_local_helper"), "stale symbols of the replaced file");
	assert_same(want, b);
	cr_assert_eq(entries("elfsym", NULL, 0), 2);
	sp_elf_close(b);
	sp_elf_close(want);
}

/* The same bytes with another mtime: a new key as well (no content hash is
 * trusted to be cheap enough; stat is). */
Test(symcache, touched_file_gets_a_new_entry)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/lib.so", work);
	unit_copy_file(FIXTURE, path);
	sp_elf_close(open_cached(path));
	struct timespec ts[2] = { { 1000000, 0 }, { 1000000, 0 } };
	cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	sp_elf_close(open_cached(path));
	cr_assert_eq(entries("elfsym", NULL, 0), 2);
}

/* A debug file installed after the entry was stored makes it stale. */
Test(symcache, debug_file_installed_later)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/lib.so", work);
	unit_copy_file(FIXTURE_STRIPPED, path);
	struct sp_elf *a = open_cached(path);
	cr_assert_null(a->debug_path);
	char cand[1024];
	cr_assert_gt(sp_elf_debug_candidate(a, cand, sizeof(cand)), 0, "no build ID in the fixture");
	sp_elf_close(a);
	/* install it: DIR/.build-id/xx/ */
	char d[1024];
	snprintf(d, sizeof(d), "%s", cand);
	*strrchr(d, '/') = '\0';
	char parent[1024];
	snprintf(parent, sizeof(parent), "%s", d);
	*strrchr(parent, '/') = '\0';
	mkdir(parent, 0700);
	cr_assert_eq(mkdir(d, 0700), 0, "%s", d);
	unit_copy_file(FIXTURE, cand);
	struct sp_elf *b = open_cached(path);
	cr_assert_not_null(b->debug_path, "the entry stored before the debug file was used");
	cr_assert_not_null(sp_elf_lookup(b, "fixture_local_helper"));
	sp_elf_close(b);
	/* and removed again */
	unlink(cand);
	struct sp_elf *c = open_cached(path);
	cr_assert_null(c->debug_path, "a removed debug file still lends its symbols");
	sp_elf_close(c);
}

static bool error_mentions(const char *what)
{
	for (struct sp_error *e = sp_error_first(); e; e = e->next)
		if (strstr(e->message, what))
			return true;
	return false;
}

/* Truncated: refused by the cache layer, its reason in the report's
 * errors (messages asked for), and the symbols read from the file. */
Test(symcache, truncated_entry_is_refused_and_rebuilt)
{
	sp_log_asked = true;
	sp_log_level = SP_LOG_ERROR - 1;   /* recorded, not printed */
	struct sp_elf *want = open_plain(FIXTURE);
	sp_elf_close(open_cached(FIXTURE));
	char p[1024];
	cr_assert_eq(entries("elfsym", p, sizeof(p)), 1);
	cr_assert_eq(truncate(p, 100), 0);
	struct sp_elf *e = open_cached(FIXTURE);
	assert_same(want, e);
	cr_assert(error_mentions("truncated") || error_mentions("wrong length"), "no reason in the errors");
	sp_elf_close(e);
	/* rebuilt: the next open is served by a whole entry again */
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_gt(st.st_size, 100);
	sp_elf_close(want);
}

/* A payload with a valid header and checksum that is not a symbol table
 * (the checks the cache layer cannot make): refused by the decoder. */
Test(symcache, garbage_payload_is_refused)
{
	sp_log_asked = true;
	sp_log_level = SP_LOG_ERROR - 1;
	struct sp_elf *want = open_plain(FIXTURE);
	sp_elf_close(open_cached(FIXTURE));
	char p[1024];
	cr_assert_eq(entries("elfsym", p, sizeof(p)), 1);
	struct sp_objcache_key key;
	unsigned long long h0, h1;
	cr_assert_eq(sscanf(strrchr(p, '-') + 1, "%16llx%16llx", &h0, &h1), 2);
	key.h[0] = h0;
	key.h[1] = h1;
	char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	sp_objcache_store("elfsym", &key, junk, sizeof(junk));
	struct sp_elf *e = open_cached(FIXTURE);
	assert_same(want, e);
	cr_assert(error_mentions("elfsym-"), "the refused entry is not named in the errors");
	sp_elf_close(e);
	sp_elf_close(want);
}

/* The decoder on every truncation and on bit flips of a real flat copy:
 * never a crash; every truncation refused. */
Test(symcache, unflatten_never_trusts_its_input)
{
	struct sp_elf *e = open_plain(FIXTURE);
	size_t len;
	uint8_t *flat = sp_elf_flatten(e, &len);
	cr_assert_not_null(flat);
	char why[256];
	struct sp_elf *back;
	cr_assert_eq(sp_elf_unflatten(flat, len, FIXTURE, &back, why, sizeof(why)), 0, "%s", why);
	assert_same(e, back);
	sp_elf_close(back);
	for (size_t n = 0; n < len; n++) {
		cr_assert_neq(sp_elf_unflatten(flat, n, FIXTURE, &back, why, sizeof(why)), 0,
			      "a truncation to %zu of %zu bytes was accepted", n, len);
		cr_assert(why[0]);
	}
	srand(13);
	uint8_t *mut = malloc(len);
	for (int round = 0; round < 20000; round++) {
		memcpy(mut, flat, len);
		for (int k = 0; k < 1 + round % 4; k++)
			mut[(size_t)rand() % len] ^= (uint8_t)(1u << (rand() % 8));
		if (sp_elf_unflatten(mut, len, FIXTURE, &back, why, sizeof(why)) == 0) {
			/* accepted: then every query stays in bounds */
			const struct sp_sym **m;
			long n = sp_elf_match(back, "*", &m);
			for (long i = 0; i < n; i++)
				(void)strlen(m[i]->name);
			sp_free(m);
			(void)sp_elf_containing(back, 0x1000);
			(void)sp_elf_lookup(back, "fixture_add");
			sp_elf_close(back);
		}
	}
	sp_free(mut);
	sp_free(flat);
	sp_elf_close(e);
}

/* ---- scanmemo ---- */

static struct sp_objcache_key memo_key = { { 0x1234, 0x5678 } };

Test(symcache, scan_memo_round_trip)
{
	struct sp_scanmemo *m = sp_scanmemo_new(&memo_key, 0x10000);
	int v;
	cr_assert_not(sp_scanmemo_get(m, 0x11000, 0x40, 0x11000, 0x11005, &v));
	sp_scanmemo_put(m, 0x11000, 0x40, 0x11000, 0x11005, SP_SCAN_OK);
	sp_scanmemo_put(m, 0x12000, 0x80, 0x12010, 0x12016, SP_SCAN_INTO_WINDOW);
	sp_scanmemo_flush(m);
	sp_scanmemo_free(m);
	cr_assert_eq(entries("scan", NULL, 0), 1);
	/* another process, the object at another address: ELF-relative */
	m = sp_scanmemo_new(&memo_key, 0x50000);
	cr_assert(sp_scanmemo_get(m, 0x51000, 0x40, 0x51000, 0x51005, &v));
	cr_assert_eq(v, SP_SCAN_OK);
	cr_assert(sp_scanmemo_get(m, 0x52000, 0x80, 0x52010, 0x52016, &v));
	cr_assert_eq(v, SP_SCAN_INTO_WINDOW);
	/* any other size, site or guard is another question */
	cr_assert_not(sp_scanmemo_get(m, 0x52000, 0x81, 0x52010, 0x52016, &v));
	cr_assert_not(sp_scanmemo_get(m, 0x52000, 0x80, 0x52010, 0x52015, &v));
	size_t loaded, hits, added;
	sp_scanmemo_stats(m, &loaded, &hits, &added);
	cr_assert_eq(loaded, 2);
	cr_assert_eq(hits, 2);
	sp_scanmemo_free(m);
	/* another object's key sees nothing */
	struct sp_objcache_key other = { { 0x1234, 0x5679 } };
	m = sp_scanmemo_new(&other, 0x50000);
	cr_assert_not(sp_scanmemo_get(m, 0x51000, 0x40, 0x51000, 0x51005, &v));
	sp_scanmemo_free(m);
}

/* A table that is not whole records, or out of order, or with a verdict
 * out of range: refused with its reason, nothing answered from it. */
Test(symcache, scan_memo_refuses_bad_tables)
{
	sp_log_asked = true;
	sp_log_level = SP_LOG_ERROR - 1;
	struct sp_scanmemo *m = sp_scanmemo_new(&memo_key, 0);
	sp_scanmemo_put(m, 0x1000, 0x40, 0x1000, 0x1005, SP_SCAN_OK);
	sp_scanmemo_put(m, 0x2000, 0x40, 0x2000, 0x2005, SP_SCAN_OK);
	sp_scanmemo_flush(m);
	sp_scanmemo_free(m);
	char p[1024];
	cr_assert_eq(entries("scan", p, sizeof(p)), 1);
	struct sp_objcache_key key;
	unsigned long long h0, h1;
	cr_assert_eq(sscanf(strrchr(p, '-') + 1, "%16llx%16llx", &h0, &h1), 2);
	key.h[0] = h0;
	key.h[1] = h1;
	struct { uint64_t site, func, size; uint32_t guard, verdict; } recs[2] = {
		{ 0x2000, 0x2000, 0x40, 5, 0 }, { 0x1000, 0x1000, 0x40, 5, 0 },   /* out of order */
	};
	const char *want[] = { "out of order", "out of range", "whole number" };
	for (int t = 0; t < 3; t++) {
		size_t len = sizeof(recs);
		if (t == 1) {
			recs[0].verdict = 99;   /* in order again, a verdict out of range */
			recs[0].site = recs[0].func = 0x1000;
			recs[1].site = recs[1].func = 0x2000;
		}
		if (t == 2)
			len -= 3;               /* truncated */
		sp_objcache_store("scan", &key, recs, len);
		m = sp_scanmemo_new(&memo_key, 0);
		int v;
		cr_assert_not(sp_scanmemo_get(m, 0x1000, 0x40, 0x1000, 0x1005, &v), "case %d answered", t);
		cr_assert(error_mentions(want[t]), "case %d: no '%s' in the errors", t, want[t]);
		sp_scanmemo_free(m);
	}
}
