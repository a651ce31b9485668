/* Tests for the branch-target index's on-disk cache (btindex.c over
 * objcache.c): libc's index, built from its file as the CLI builds it,
 * stored, loaded back, and compared with the built one field by field
 * (every set with its phrases, the unknown jumps, every counter), at the
 * bias it was built at and at another.  Each test runs in its own process
 * (Criterion) with UPROBE_CACHE in a fresh directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze.h"
#include "btindex.h"
#include "objcache.h"
#include "unit.h"

static struct sp_an_object *obj;   /* libc, unless a test opens another */
static char cache_dir[] = "/tmp/sp-objcache-XXXXXX";

static void open_obj(const char *path)
{
	char err[256];
	cr_assert_eq(sp_analyze_open(path, &obj, err, sizeof(err)), 0, "%s: %s", path, err);
	cr_assert_gt(obj->elf->build_id_len, 0, "%s has no build ID", path);
}

static void setup(void)
{
	cr_assert_not_null(mkdtemp(cache_dir));
	setenv("UPROBE_CACHE", cache_dir, 1);   /* read once, at the cache's first use */
	cr_assert(sp_objcache_enabled(), "the cache is off in %s", cache_dir);
	Dl_info info;
	cr_assert(dladdr((void *)printf, &info) && info.dli_fname, "libc's file not found");
	open_obj(info.dli_fname);
}

static void teardown(void)
{
	sp_analyze_close(obj);
	unit_rmdir_flat(cache_dir);
}

/* libc's code at BIAS (its text's bytes as read from the file). */
static struct sp_objcode code_at(uintptr_t bias)
{
	struct sp_objcode oc = { .elf = obj->elf, .path = obj->path, .bias = bias, .n_text = obj->n_text };
	for (int i = 0; i < obj->n_text; i++) {
		oc.text[i].start = obj->text[i].vaddr + bias;
		oc.text[i].end = obj->text[i].vaddr + obj->text[i].size + bias;
		oc.text[i].bytes = obj->text[i].bytes;
	}
	return oc;
}

static size_t entries(void)
{
	size_t n = 0;
	DIR *d = opendir(cache_dir);
	for (struct dirent *e; d && (e = readdir(d));)
		n += strncmp(e->d_name, "btindex-", 8) == 0 && !strstr(e->d_name, ".tmp");
	if (d)
		closedir(d);
	return n;
}

static struct sp_btindex *cached(uintptr_t bias, bool *loaded)
{
	struct sp_objcode oc = code_at(bias);
	struct sp_btindex *x = sp_btindex_build_cached(&oc, obj->elf->build_id, obj->elf->build_id_len, loaded);
	cr_assert_not_null(x);
	return x;
}

TestSuite(objcache, .init = setup, .fini = teardown);

/* OBJ's index built, stored, loaded (at its bias and another): the same,
 * field by field.  Its counters in *ST. */
static void round_trip(struct sp_btindex_stats *st)
{
	struct sp_objcode oc = code_at(0);
	struct sp_btindex *built = sp_btindex_build(&oc);
	cr_assert_not_null(built);
	sp_btindex_stats(built, st);

	bool loaded;
	struct sp_btindex *cold = cached(0, &loaded);
	cr_assert(!loaded, "an empty cache gave an index");
	cr_assert_eq(entries(), 1, "cold: one entry written");
	struct sp_btindex *warm = cached(0, &loaded);
	cr_assert(loaded, "warm: the entry was not used");

	char what[512];
	cr_expect(sp_btindex_same(built, cold, what, sizeof(what)), "%s: built / cold: %s", obj->path, what);
	cr_expect(sp_btindex_same(built, warm, what, sizeof(what)), "%s: built / loaded: %s", obj->path, what);
	struct sp_btindex_stats sw;
	sp_btindex_stats(warm, &sw);
	cr_expect(memcmp(st, &sw, sizeof(sw)) == 0, "%s: the loaded index's counters differ", obj->path);

	/* the same code mapped elsewhere: the entry is relative to the bias
	 * (a non-PIE object's absolute addresses do not move: another entry) */
	const uintptr_t bias = 0x7f3a12345000;
	struct sp_btindex *moved = cached(bias, &loaded);
	cr_assert(loaded == (obj->elf->e_type != 2 /* ET_EXEC */), "another bias: the entry was %sused",
		  loaded ? "" : "not ");
	struct sp_objcode ob = code_at(bias);
	struct sp_btindex *rebuilt = sp_btindex_build(&ob);
	cr_assert_not_null(rebuilt);
	cr_expect(sp_btindex_same(rebuilt, moved, what, sizeof(what)), "%s: built / loaded at %#lx: %s",
		  obj->path, (unsigned long)bias, what);

	sp_btindex_free(built);
	sp_btindex_free(cold);
	sp_btindex_free(warm);
	sp_btindex_free(moved);
	sp_btindex_free(rebuilt);
}

Test(objcache, libc_index_loaded_is_built)
{
	struct sp_btindex_stats st;
	round_trip(&st);
	/* every part of the index is exercised, not just the direct targets */
	cr_expect(st.direct > 1000 && st.taken > 1000 && st.tables > 10 && st.table_entries > st.tables &&
		  st.tables_elsewhere > 0,
		  "libc's index is smaller than expected: %zu direct, %zu taken, %zu tables, %zu entries, "
		  "%zu elsewhere", st.direct, st.taken, st.tables, st.table_entries, st.tables_elsewhere);
}

/* A non-PIE program: absolute tables, immediates and data words taken. */
Test(objcache, non_pie_index_loaded_is_built)
{
	sp_analyze_close(obj);
	open_obj(TEST_BIN_DIR "/../tests/sp_nopie_table");
	struct sp_btindex_stats st;
	round_trip(&st);
	cr_expect(st.tables > 0 && st.taken > 0, "sp_nopie_table: %zu tables, %zu taken", st.tables, st.taken);
}

/* test_decide's hand-laid functions: unknown jump tables among them. */
Test(objcache, unknown_jumps_loaded_as_built)
{
	sp_analyze_close(obj);
	open_obj(TEST_BIN_DIR "/../tests/test_decide");
	struct sp_btindex_stats st;
	round_trip(&st);
	cr_expect(st.unknown_tables > 0 && st.tables > 0, "test_decide: %zu unknown jumps, %zu tables",
		  st.unknown_tables, st.tables);
}

/* The comparison sees a difference (it is not trivially true). */
Test(objcache, same_tells_indexes_apart)
{
	char err[256], what[512];
	struct sp_an_object *other;
	cr_assert_eq(sp_analyze_open(TEST_BIN_DIR "/../tests/libsp_switch_gcc.so", &other, err, sizeof(err)), 0,
		     "%s", err);
	struct sp_objcode oc = code_at(0);
	struct sp_objcode oo = { .elf = other->elf, .path = other->path, .n_text = other->n_text };
	for (int i = 0; i < other->n_text; i++) {
		oo.text[i].start = other->text[i].vaddr;
		oo.text[i].end = other->text[i].vaddr + other->text[i].size;
		oo.text[i].bytes = other->text[i].bytes;
	}
	struct sp_btindex *a = sp_btindex_build(&oc), *b = sp_btindex_build(&oo);
	cr_assert(a && b);
	cr_expect(!sp_btindex_same(a, b, what, sizeof(what)), "libc's index and libsp_switch_gcc's are the same");
	cr_expect(sp_btindex_same(a, a, what, sizeof(what)), "an index differs from itself: %s", what);
	sp_btindex_free(a);
	sp_btindex_free(b);
	sp_analyze_close(other);
}

/* An entry of the old format (owncalls' direct targets only) under the
 * new key is never taken for an index: decode refuses its shape. */
Test(objcache, a_foreign_payload_is_rebuilt)
{
	bool loaded;
	struct sp_btindex *x = cached(0, &loaded);
	cr_assert(!loaded);
	DIR *d = opendir(cache_dir);
	char p[512] = "";
	for (struct dirent *e; d && (e = readdir(d));)
		if (strncmp(e->d_name, "btindex-", 8) == 0)
			snprintf(p, sizeof(p), "%s/%s", cache_dir, e->d_name);
	closedir(d);
	cr_assert(p[0], "no entry written");
	/* rewrite the payload as a sorted array of addresses, with a valid
	 * header and checksum: the objcache layer accepts it, the index's
	 * decoder must not */
	struct sp_objcache_key key;
	unsigned long long h0, h1;
	cr_assert_eq(sscanf(strrchr(p, '-') + 1, "%16llx%16llx", &h0, &h1), 2);
	key.h[0] = h0;
	key.h[1] = h1;
	uint64_t old[4] = { 0x1000, 0x1010, 0x1020, 0x1030 };
	sp_objcache_store("btindex", &key, old, sizeof(old));
	struct sp_btindex *y = cached(0, &loaded);
	cr_expect(!loaded, "an old-format payload was taken for an index");
	char what[512];
	cr_expect(sp_btindex_same(x, y, what, sizeof(what)), "rebuilt: %s", what);
	struct sp_btindex *z = cached(0, &loaded);
	cr_expect(loaded, "the rebuilt index was not stored again");
	sp_btindex_free(x);
	sp_btindex_free(y);
	sp_btindex_free(z);
}

/* *START moved by a byte gives another key; put back, the same. */
static void start_in_key(uint64_t *start, const char *what, size_t i)
{
	struct sp_objcode oc = code_at(0);
	struct sp_objcache_key moved, same;
	uint64_t was = *start;
	*start = was + 1;
	sp_btindex_key(&oc, obj->elf->build_id, obj->elf->build_id_len, &moved);
	*start = was;
	sp_btindex_key(&oc, obj->elf->build_id, obj->elf->build_id_len, &same);
	cr_assert_neq(memcmp(&moved, &same, sizeof(same)), 0, "%s %zu's start is not in the key", what, i);
}

/* The key names every symbol start and extent start, wherever it lies
 * (they are hashed a block at a time): one moved by a byte, first, in the
 * middle or last, is another entry; put back, the first is used again. */
Test(objcache, every_symbol_start_is_in_the_key)
{
	struct sp_elf *e = obj->elf;
	cr_assert_gt(e->n_syms, 600, "libc has few symbols");
	cr_assert_gt(e->n_ext, 1);
	bool loaded;
	sp_btindex_free(cached(0, &loaded));
	cr_assert_eq(entries(), 1);
	size_t at[] = { 0, 255, 256, e->n_syms / 2, e->n_syms - 1 };
	for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++)
		start_in_key(&e->syms[at[k]].value, "symbol", at[k]);
	start_in_key(&e->ext[0].lo, "extent", 0);
	start_in_key(&e->ext[e->n_ext - 1].lo, "extent", e->n_ext - 1);
	struct sp_btindex *x = cached(0, &loaded);
	cr_assert(loaded, "the same starts: the same entry");
	sp_btindex_free(x);
}
