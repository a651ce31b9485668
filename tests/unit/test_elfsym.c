/* elfsym: function symbols from .symtab, .dynsym and build-id debug files,
 * checked against the fixture library (tests/fixtures/fixture.c), libc and
 * the dynamic loader's own view (dlsym), plus corrupt inputs. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elfsym.h"
#include "heap.h"

#define FIXTURE TEST_LIB_DIR "/libsp_fixture.so"
#define FIXTURE_STRIPPED TEST_LIB_DIR "/libsp_fixture_stripped.so"

static char err[1024];

static struct sp_elf *open_ok(const char *path)
{
	struct sp_elf *e = NULL;
	int ret = sp_elf_open(path, &e, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s: %d %s", path, ret, err);
	cr_assert_not_null(e);
	return e;
}

static const struct sp_sym *lookup_ok(const struct sp_elf *e, const char *name)
{
	const struct sp_sym *s = sp_elf_lookup(e, name);
	cr_assert_not_null(s, "%s not found in %s", name, e->path);
	cr_assert_str_eq(s->name, name);
	return s;
}

/* ---- files ------------------------------------------------------------- */

static void *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *buf = malloc((size_t)n);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	fclose(f);
}

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char path[256];
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/sp_elfsym_XXXXXX");
		cr_assert_not_null(mkdtemp(tmpdir));
	}
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* Each test runs in its own process with its own temporary directory. */
static void remove_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

TestSuite(elfsym, .fini = remove_tmpdir);

/* Open a corrupted copy: must fail cleanly with a message, or succeed. */
static int open_bytes(const void *buf, size_t len)
{
	const char *path = tmp_path("corrupt.so");
	struct sp_elf *e = NULL;
	write_file(path, buf, len);
	err[0] = '\0';
	int ret = sp_elf_open(path, &e, err, sizeof(err));
	if (ret == 0) {
		cr_assert_not_null(e);
		sp_elf_close(e);
	} else {
		cr_assert_lt(ret, 0);
		cr_assert_null(e);
		cr_assert_neq(err[0], '\0', "error %d without a message", ret);
	}
	unlink(path);
	return ret;
}

/* The section header of the first section of TYPE in an ELF image. */
static Elf64_Shdr *shdr_of(void *buf, uint32_t type)
{
	Elf64_Ehdr *eh = buf;
	Elf64_Shdr *sh = (Elf64_Shdr *)((char *)buf + eh->e_shoff);
	for (int i = 0; i < eh->e_shnum; i++)
		if (sh[i].sh_type == type)
			return &sh[i];
	cr_assert_fail("no section of type %u", type);
	return NULL;
}

/* The fixture's load bias in this process, after dlopen. */
static uintptr_t fixture_bias(void *h)
{
	Dl_info info;
	void *f = dlsym(h, "fixture_add");
	cr_assert_not_null(f);
	cr_assert(dladdr(f, &info));
	return (uintptr_t)info.dli_fbase;
}

/* ---- the fixture ------------------------------------------------------- */

Test(elfsym, fixture_globals_match_dlsym)
{
	struct sp_elf *e = open_ok(FIXTURE);
	void *h = dlopen(FIXTURE, RTLD_NOW);
	cr_assert_not_null(h, "%s", dlerror());
	uintptr_t bias = fixture_bias(h);

	cr_assert(e->has_symtab);
	cr_assert_null(e->debug_path);
	cr_assert_eq(e->e_type, ET_DYN);
	const char *names[] = { "fixture_add", "fixture_mul", "fixture_glob_a",
				"fixture_glob_b", "fixture_ifunc_impl_a", "fixture_ifunc_impl_b" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct sp_sym *s = lookup_ok(e, names[i]);
		cr_assert(s->is_global, "%s", names[i]);
		cr_assert(s->in_dynsym, "%s", names[i]);
		cr_assert_not(s->is_ifunc, "%s", names[i]);
		cr_assert_gt(s->size, 0, "%s", names[i]);
		cr_assert_eq(s->value, (uintptr_t)dlsym(h, names[i]) - bias, "%s", names[i]);
		cr_assert(sp_elf_vaddr_is_text(e, s->value));
	}
	cr_assert_neq(lookup_ok(e, "fixture_ifunc_impl_a")->size,
		      lookup_ok(e, "fixture_ifunc_impl_b")->size);
	cr_assert_null(sp_elf_lookup(e, "fixture_nonexistent"));
	cr_assert_null(sp_elf_lookup(e, "fixture"));

	/* Sorted by value, then name. */
	for (size_t i = 1; i < e->n_syms; i++) {
		const struct sp_sym *a = &e->syms[i - 1], *b = &e->syms[i];
		cr_assert(a->value < b->value ||
			  (a->value == b->value && strcmp(a->name, b->name) <= 0));
	}
	dlclose(h);
	sp_elf_close(e);
}

Test(elfsym, local_function_from_symtab)
{
	struct sp_elf *e = open_ok(FIXTURE);
	const struct sp_sym *s = lookup_ok(e, "fixture_local_helper");
	cr_assert_not(s->is_global);
	cr_assert_not(s->in_dynsym);
	cr_assert_gt(s->size, 0);
	sp_elf_close(e);
}

Test(elfsym, stripped_copy_has_only_dynsym)
{
	sp_elf_set_debug_root(tmp_path("empty-debug-root"));
	struct sp_elf *e = open_ok(FIXTURE_STRIPPED);
	cr_assert_not(e->has_symtab);
	cr_assert_null(e->debug_path);
	cr_assert_null(sp_elf_lookup(e, "fixture_local_helper"));
	cr_assert_gt(e->n_syms, 0);
	for (size_t i = 0; i < e->n_syms; i++) {
		cr_assert(e->syms[i].in_dynsym, "%s", e->syms[i].name);
		cr_assert(e->syms[i].is_global, "%s", e->syms[i].name);
	}
	struct sp_elf *full = open_ok(FIXTURE);
	const struct sp_sym *a = lookup_ok(e, "fixture_mul"), *b = lookup_ok(full, "fixture_mul");
	cr_assert_eq(a->value, b->value);
	cr_assert_eq(a->size, b->size);
	cr_assert(lookup_ok(e, "fixture_ifunc")->is_ifunc);
	sp_elf_close(full);
	sp_elf_close(e);
	sp_elf_set_debug_root(NULL);
}

Test(elfsym, glob_match)
{
	struct sp_elf *e = open_ok(FIXTURE);
	const struct sp_sym **m;
	long n = sp_elf_match(e, "fixture_glob_*", &m);
	cr_assert_eq(n, 2);
	cr_assert_lt(m[0]->value, m[1]->value);
	const char *x = m[0]->name, *y = m[1]->name;
	cr_assert((!strcmp(x, "fixture_glob_a") && !strcmp(y, "fixture_glob_b")) ||
		  (!strcmp(x, "fixture_glob_b") && !strcmp(y, "fixture_glob_a")));
	sp_free(m);

	cr_assert_eq(sp_elf_match(e, "no_such_*", &m), 0);
	sp_free(m);
	cr_assert_eq(sp_elf_match(e, "fixture_mul", &m), 1);
	cr_assert_str_eq(m[0]->name, "fixture_mul");
	sp_free(m);
	sp_elf_close(e);
}

Test(elfsym, alias_is_one_address)
{
	struct sp_elf *e = open_ok(FIXTURE);
	const struct sp_sym *add = lookup_ok(e, "fixture_add");
	const struct sp_sym *alias = lookup_ok(e, "fixture_add_alias");
	cr_assert_eq(add->value, alias->value);

	const struct sp_sym **m;
	cr_assert_eq(sp_elf_match(e, "fixture_add*", &m), 1);
	cr_assert_str_eq(m[0]->name, "fixture_add");
	sp_free(m);
	/* The alias alone still matches. */
	cr_assert_eq(sp_elf_match(e, "*_alias", &m), 1);
	cr_assert_str_eq(m[0]->name, "fixture_add_alias");
	sp_free(m);
	sp_elf_close(e);
}

Test(elfsym, ifunc_flag_and_resolver)
{
	struct sp_elf *e = open_ok(FIXTURE);
	const struct sp_sym *ifn = lookup_ok(e, "fixture_ifunc");
	const struct sp_sym *res = lookup_ok(e, "fixture_ifunc_resolver");
	cr_assert(ifn->is_ifunc);
	cr_assert(ifn->is_global && ifn->in_dynsym);
	cr_assert_not(res->is_ifunc);
	cr_assert_not(res->is_global);
	/* The IFUNC symbol's value is its resolver. */
	cr_assert_eq(ifn->value, res->value);

	/* One site per address: the resolver's local name loses to the
	 * exported IFUNC name. */
	const struct sp_sym **m;
	cr_assert_eq(sp_elf_match(e, "fixture_ifunc*", &m), 3);
	int seen = 0;
	for (int i = 0; i < 3; i++)
		if (m[i]->value == ifn->value) {
			cr_assert_str_eq(m[i]->name, "fixture_ifunc");
			seen++;
		}
	cr_assert_eq(seen, 1);
	sp_free(m);

	/* The loader resolved it to impl_b. */
	void *h = dlopen(FIXTURE, RTLD_NOW);
	cr_assert_not_null(h);
	int (*f)(int) = (int (*)(int))dlsym(h, "fixture_ifunc");
	cr_assert_eq((uintptr_t)f - fixture_bias(h), lookup_ok(e, "fixture_ifunc_impl_b")->value);
	cr_assert_eq(f(3), 8);
	dlclose(h);
	sp_elf_close(e);
}

Test(elfsym, containing)
{
	struct sp_elf *e = open_ok(FIXTURE);
	const struct sp_sym *mul = lookup_ok(e, "fixture_mul");
	cr_assert_eq(sp_elf_containing(e, mul->value), mul);
	cr_assert_eq(sp_elf_containing(e, mul->value + 1), mul);
	cr_assert_eq(sp_elf_containing(e, mul->value + mul->size - 1), mul);
	const struct sp_sym *after = sp_elf_containing(e, mul->value + mul->size);
	cr_assert(after != mul);

	/* Aliases: the preferred (global, first) name. */
	const struct sp_sym *add = sp_elf_containing(e, lookup_ok(e, "fixture_add")->value + 2);
	cr_assert_not_null(add);
	cr_assert_str_eq(add->name, "fixture_add");
	const struct sp_sym *ifn = sp_elf_containing(e, lookup_ok(e, "fixture_ifunc")->value);
	cr_assert_not_null(ifn);
	cr_assert_str_eq(ifn->name, "fixture_ifunc");

	/* A local function is found too. */
	const struct sp_sym *loc = lookup_ok(e, "fixture_local_helper");
	cr_assert_eq(sp_elf_containing(e, loc->value + loc->size / 2), loc);

	cr_assert_null(sp_elf_containing(e, 0));
	cr_assert_null(sp_elf_containing(e, UINT64_MAX));
	sp_elf_close(e);
}

Test(elfsym, zero_size_symbols_match_only_their_address)
{
	struct sp_elf *e = open_ok(FIXTURE);
	/* crtstuff's frame_dummy/_init have size 0 in .symtab. */
	const struct sp_sym *z = NULL;
	for (size_t i = 0; i < e->n_syms && !z; i++)
		if (e->syms[i].size == 0)
			z = &e->syms[i];
	cr_assert_not_null(z, "fixture has no zero-size function symbol");
	const struct sp_sym *c = sp_elf_containing(e, z->value);
	cr_assert_not_null(c);
	cr_assert_eq(c->value, z->value);
	const struct sp_sym *c1 = sp_elf_containing(e, z->value + 1);
	cr_assert(c1 == NULL || (c1->size && c1->value <= z->value + 1 &&
				 z->value + 1 < c1->value + c1->size));
	sp_elf_close(e);
}

Test(elfsym, vaddr_to_offset_matches_loaded_bytes)
{
	struct sp_elf *e = open_ok(FIXTURE);
	size_t len;
	unsigned char *file = read_file(FIXTURE, &len);
	void *h = dlopen(FIXTURE, RTLD_NOW);
	cr_assert_not_null(h);
	uintptr_t bias = fixture_bias(h);

	const char *names[] = { "fixture_mul", "fixture_glob_b", "fixture_local_helper" };
	for (size_t i = 0; i < 3; i++) {
		const struct sp_sym *s = lookup_ok(e, names[i]);
		uint64_t off;
		cr_assert_eq(sp_elf_vaddr_to_offset(e, s->value, &off), 0);
		cr_assert_leq(off + s->size, len);
		cr_assert_eq(memcmp(file + off, (void *)(s->value + bias), s->size), 0,
			     "%s: bytes at file offset 0x%lx differ from memory", names[i],
			     (unsigned long)off);
	}
	uint64_t off = 0;
	cr_assert_eq(sp_elf_vaddr_to_offset(e, 1ull << 40, &off), -ENOENT);
	cr_assert_not(sp_elf_vaddr_is_text(e, 1ull << 40));
	cr_assert_eq(sp_elf_vaddr_to_offset(e, 0, &off), 0);
	cr_assert_eq(off, 0);                   /* the ELF header, not text */
	cr_assert_not(sp_elf_vaddr_is_text(e, 0));
	dlclose(h);
	sp_free(file);
	sp_elf_close(e);
}

Test(elfsym, debug_file_by_build_id)
{
	/* The stripped copy keeps the build-id note: put the unstripped file
	 * where that build-id points, under a private debug root. */
	char root[256], dir[512], dbg[1024];
	snprintf(root, sizeof(root), "%s", tmp_path("debug"));

	cr_assert_neq(elf_version(EV_CURRENT), EV_NONE);
	int fd = open(FIXTURE_STRIPPED, O_RDONLY);
	cr_assert_geq(fd, 0);
	Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
	cr_assert_not_null(elf);
	Elf_Scn *scn = NULL;
	char hex[129] = "";
	while ((scn = elf_nextscn(elf, scn)) && !hex[0]) {
		GElf_Shdr sh;
		gelf_getshdr(scn, &sh);
		if (sh.sh_type != SHT_NOTE)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		GElf_Nhdr nh;
		size_t no, doff;
		if (gelf_getnote(d, 0, &nh, &no, &doff) && nh.n_type == NT_GNU_BUILD_ID)
			for (size_t i = 0; i < nh.n_descsz; i++)
				sprintf(hex + 2 * i, "%02x", ((unsigned char *)d->d_buf)[doff + i]);
	}
	elf_end(elf);
	close(fd);
	cr_assert_gt(strlen(hex), 4, "no build-id in the stripped fixture");

	snprintf(dir, sizeof(dir), "%s/.build-id/%.2s", root, hex);
	snprintf(dbg, sizeof(dbg), "%s/%s.debug", dir, hex + 2);
	mkdir(root, 0700);
	mkdir(tmp_path("debug/.build-id"), 0700);
	cr_assert_eq(mkdir(dir, 0700), 0);
	size_t len;
	void *full = read_file(FIXTURE, &len);
	write_file(dbg, full, len);
	sp_free(full);

	sp_elf_set_debug_root(root);
	struct sp_elf *e = open_ok(FIXTURE_STRIPPED);
	cr_assert(e->has_symtab);
	cr_assert_not_null(e->debug_path);
	cr_assert_str_eq(e->debug_path, dbg);
	const struct sp_sym *loc = lookup_ok(e, "fixture_local_helper");
	cr_assert_not(loc->in_dynsym);
	const struct sp_sym *add = lookup_ok(e, "fixture_add");
	cr_assert(add->in_dynsym && add->is_global);
	/* The merge did not duplicate symbols that are in both tables. */
	const struct sp_sym **m;
	cr_assert_eq(sp_elf_match(e, "fixture_mul", &m), 1);
	sp_free(m);
	size_t count = 0;
	for (size_t i = 0; i < e->n_syms; i++)
		count += !strcmp(e->syms[i].name, "fixture_mul");
	cr_assert_eq(count, 1);
	sp_elf_close(e);

	/* A file with another build-id at that name is not used. */
	void *ls = read_file("/bin/ls", &len);
	write_file(dbg, ls, len);
	sp_free(ls);
	e = open_ok(FIXTURE_STRIPPED);
	cr_assert_null(e->debug_path);
	cr_assert_not(e->has_symtab);
	sp_elf_close(e);

	/* A garbage debug file falls back to .dynsym. */
	write_file(dbg, "garbage", 7);
	e = open_ok(FIXTURE_STRIPPED);
	cr_assert_null(e->debug_path);
	cr_assert_not_null(sp_elf_lookup(e, "fixture_add"));
	sp_elf_close(e);
	sp_elf_set_debug_root(NULL);

	unlink(dbg);
	rmdir(dir);
	rmdir(tmp_path("debug/.build-id"));
	rmdir(root);
}

/* ---- system files ------------------------------------------------------ */

Test(elfsym, libc)
{
	Dl_info info;
	void *getpid_addr = dlsym(RTLD_DEFAULT, "getpid");
	cr_assert(dladdr(getpid_addr, &info));
	struct sp_elf *e = open_ok(info.dli_fname);

	/* libc.so.6 has no .symtab of its own: symbols come from libc6-dbg's
	 * debug file when it is installed, else from .dynsym. */
	cr_assert_eq(e->has_symtab, e->debug_path != NULL);
	const struct sp_sym *s = lookup_ok(e, "getpid");
	cr_assert(s->is_global && s->in_dynsym);
	cr_assert_eq(s->value + (uintptr_t)info.dli_fbase, (uintptr_t)getpid_addr);
	s = lookup_ok(e, "malloc");
	cr_assert(s->is_global && s->in_dynsym);
	cr_assert_gt(s->size, 0);
	cr_assert_not(s->is_ifunc);
	/* memcpy has two .dynsym versions; the default one (GLIBC_2.14) is the
	 * IFUNC, the old GLIBC_2.2.5 one is a plain function. */
	const struct sp_sym *memcpy_sym = lookup_ok(e, "memcpy");
	cr_assert(memcpy_sym->is_ifunc);
	cr_assert(memcpy_sym->is_global && memcpy_sym->in_dynsym);
	cr_assert(lookup_ok(e, "strlen")->is_ifunc);
	/* …and a glob for "memcpy" names that one site, not the old version. */
	const struct sp_sym **m;
	cr_assert_eq(sp_elf_match(e, "memcpy", &m), 1);
	cr_assert_eq(m[0], memcpy_sym);
	sp_free(m);
	sp_elf_close(e);
}

/* What CI sees without libc6-dbg: .dynsym alone, two versions of memcpy. */
Test(elfsym, libc_without_debug_file)
{
	Dl_info info;
	cr_assert(dladdr(dlsym(RTLD_DEFAULT, "getpid"), &info));
	sp_elf_set_debug_root(tmp_path("empty-debug-root"));
	struct sp_elf *e = open_ok(info.dli_fname);
	cr_assert_not(e->has_symtab);
	cr_assert_null(e->debug_path);
	size_t n_memcpy = 0;
	for (size_t i = 0; i < e->n_syms; i++)
		n_memcpy += !strcmp(e->syms[i].name, "memcpy");
	cr_assert_eq(n_memcpy, 2);
	const struct sp_sym *s = lookup_ok(e, "memcpy");
	cr_assert(s->is_ifunc);
	const struct sp_sym **m;
	cr_assert_eq(sp_elf_match(e, "memcpy", &m), 1);
	cr_assert_eq(m[0], s);
	sp_free(m);
	sp_elf_close(e);
	sp_elf_set_debug_root(NULL);
}

Test(elfsym, bin_ls)
{
	struct sp_elf *e = open_ok("/bin/ls");
	cr_assert_gt(e->n_syms, 0);
	cr_assert_gt(e->n_segs, 1);
	bool text = false;
	for (size_t i = 0; i < e->n_segs; i++)
		text |= (e->segs[i].flags & PF_X) != 0;
	cr_assert(text);
	for (size_t i = 0; i < e->n_syms; i++)
		cr_assert_neq(e->syms[i].value, 0);
	sp_elf_close(e);
}

/* ---- bad input --------------------------------------------------------- */

Test(elfsym, missing_file)
{
	struct sp_elf *e = (void *)1;
	cr_assert_eq(sp_elf_open("/no/such/file.so", &e, err, sizeof(err)), -ENOENT);
	cr_assert_null(e);
	cr_assert_str_eq(err, "cannot open '/no/such/file.so': No such file or directory");
}

Test(elfsym, not_elf)
{
	char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	cr_assert_eq(open_bytes(junk, sizeof(junk)), -ENOEXEC);
	cr_assert_not_null(strstr(err, "not an ELF file"), "%s", err);
	cr_assert_eq(open_bytes("", 0), -ENOEXEC);
	cr_assert_eq(open_bytes("\177ELF", 4), -ENOEXEC);
	/* A directory. */
	struct sp_elf *e = NULL;
	cr_assert_lt(sp_elf_open("/", &e, err, sizeof(err)), 0);
	cr_assert_null(e);
}

Test(elfsym, wrong_machine)
{
	size_t len;
	unsigned char *buf = read_file(FIXTURE, &len);
	((Elf64_Ehdr *)buf)->e_machine = EM_AARCH64;
	cr_assert_eq(open_bytes(buf, len), -ENOEXEC);
	cr_assert_not_null(strstr(err, "x86-64"), "%s", err);
	sp_free(buf);
}

Test(elfsym, truncated)
{
	size_t len;
	unsigned char *buf = read_file(FIXTURE, &len);
	/* Section headers are at the end: every truncation loses them, and
	 * most lose the symbol tables too. */
	size_t cuts[] = { 63, 64, 200, 1000, len / 2, len - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		int ret = open_bytes(buf, cuts[i]);
		cr_assert(ret == -EINVAL || ret == -ENOEXEC, "cut at %zu: %d", cuts[i], ret);
	}
	open_bytes(buf, 1000);
	cr_assert_not_null(strstr(err, "section headers missing or truncated"), "%s", err);
	sp_free(buf);
}

Test(elfsym, corrupt_symtab)
{
	size_t len;
	unsigned char *buf = read_file(FIXTURE, &len);

	Elf64_Shdr *st = shdr_of(buf, SHT_SYMTAB);
	st->sh_entsize = 7;
	cr_assert_eq(open_bytes(buf, len), -EINVAL);
	cr_assert_not_null(strstr(err, "corrupt symbol table"), "%s", err);
	st->sh_entsize = sizeof(Elf64_Sym);

	uint32_t link = st->sh_link;
	st->sh_link = 0xffff;
	cr_assert_eq(open_bytes(buf, len), -EINVAL);
	st->sh_link = 0;                      /* not a string table */
	cr_assert_eq(open_bytes(buf, len), -EINVAL);
	st->sh_link = link;

	uint64_t size = st->sh_size;
	st->sh_size = 1ull << 40;              /* beyond the file */
	cr_assert_eq(open_bytes(buf, len), -EINVAL);
	st->sh_size = size;

	/* A function symbol whose name points outside .strtab. */
	Elf64_Sym *syms = (Elf64_Sym *)(buf + st->sh_offset);
	size_t n = st->sh_size / sizeof(Elf64_Sym), i;
	for (i = 1; i < n; i++)
		if (ELF64_ST_TYPE(syms[i].st_info) == STT_FUNC && syms[i].st_value)
			break;
	cr_assert_lt(i, n);
	syms[i].st_name = 0x7fffffff;
	cr_assert_eq(open_bytes(buf, len), -EINVAL);
	cr_assert_not_null(strstr(err, "bad name offset"), "%s", err);

	sp_free(buf);
	buf = read_file(FIXTURE, &len);
	cr_assert_eq(open_bytes(buf, len), 0);     /* the pristine copy is fine */
	sp_free(buf);
}

Test(elfsym, random_corruption_never_crashes)
{
	size_t len;
	unsigned char *orig = read_file(FIXTURE, &len);
	unsigned char *buf = malloc(len);
	unsigned seed = 12345;
	int failed = 0;

	for (int round = 0; round < 300; round++) {
		memcpy(buf, orig, len);
		int flips = 1 + (int)(rand_r(&seed) % 16);
		for (int k = 0; k < flips; k++) {
			/* Aim at the headers and tables most of the time. */
			size_t r = (size_t)rand_r(&seed), where;
			if (r % 2)
				where = r / 2 % 64;
			else if (r / 2 % 4)
				where = len - 1 - r / 8 % 4096;
			else
				where = r / 8 % len;
			buf[where] = (unsigned char)rand_r(&seed);
		}
		failed += open_bytes(buf, len) < 0;
	}
	cr_assert_gt(failed, 0);
	sp_free(buf);
	sp_free(orig);
}
