/* elfsym — function symbols of an ELF file, read with libelf.
 *
 * Where the symbols come from, in order:
 *   1. the file's own .symtab (unstripped binaries, most test targets);
 *   2. else the separate debug file /usr/lib/debug/.build-id/ab/cdef….debug
 *      named by the file's NT_GNU_BUILD_ID note (Debian's *-dbg/-dbgsym
 *      packages; libc6-dbg gives libc.so.6 its locals);
 *   3. else .dynsym alone (a stripped library: exported functions only).
 * The file's .dynsym is always merged in: a symbol with the same name, value
 * and binding in both is one symbol marked in_dynsym, the others are added.
 * .symtab names of versioned definitions carry the version
 * ("memcpy@@GLIBC_2.14") while .dynsym names do not (the version is in
 * .gnu.version), so the merge is what makes plain "memcpy" findable.
 *
 * A .dynsym name can occur twice with different versions (glibc's
 * memcpy@GLIBC_2.2.5 and memcpy@@GLIBC_2.14); the one whose .gnu.version
 * entry has the hidden bit is not what dlsym returns, and lookups prefer the
 * other.  That flag lives in priv, next to the name storage.
 *
 * The file is untrusted: libelf checks that section data lies inside the
 * file, elf_strptr checks string offsets; we check types, entry sizes and
 * sh_link before trusting a section.  Nothing is kept open: the names are
 * copied and the Elf handle and descriptor closed before sp_elf_open returns.
 */
#include "elfsym.h"
#include "heap.h"
#include "sort.h"
#include "prefault.h"
#include "ehframe.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_DEBUG_ROOT "/usr/lib/debug"
#define MAX_BUILD_ID 64          /* bytes; GNU ld emits 20 (sha1) or 16 (md5) */

static char debug_root[PATH_MAX];   /* empty: DEFAULT_DEBUG_ROOT */

enum {
	F_IFUNC = 1, F_GLOBAL = 2, F_DYNSYM = 4, F_HIDDEN_VER = 8,
};

/* A symbol while collecting: the name is an offset, because the string
 * buffer moves as it grows. */
struct raw_sym {
	uint64_t value, size;
	size_t name;
	unsigned flags;
};

struct collect {
	struct raw_sym *syms;
	size_t n, cap;
	char *str;
	size_t str_len, str_cap;
};

struct priv {
	char *strings;
	size_t strings_len;
	bool *hidden_ver;        /* per symbol: a non-default .dynsym version */
	bool *shadowed;          /* per symbol: hidden, and the default version
				  * exists under the same name (globs skip it) */
	uint64_t max_size;       /* bounds the backward scan in sp_elf_containing */
};

void sp_elf_set_debug_root(const char *dir)
{
	snprintf(debug_root, sizeof(debug_root), "%s", dir ? dir : "");
}

/* ---- collecting ------------------------------------------------------- */

static int add_string(struct collect *c, const char *s, size_t *off)
{
	size_t len = strlen(s) + 1;

	if (c->str_len + len > c->str_cap) {
		size_t cap = c->str_cap ? c->str_cap : 4096;
		while (cap < c->str_len + len)
			cap *= 2;
		char *str = sp_realloc(c->str, cap);
		if (!str)
			return -ENOMEM;
		c->str = str;
		c->str_cap = cap;
	}
	memcpy(c->str + c->str_len, s, len);
	*off = c->str_len;
	c->str_len += len;
	return 0;
}

static int add_sym(struct collect *c, const char *name, const GElf_Sym *sym,
		   unsigned flags)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct raw_sym *syms = sp_realloc(c->syms, cap * sizeof(*syms));
		if (!syms)
			return -ENOMEM;
		c->syms = syms;
		c->cap = cap;
	}
	struct raw_sym *r = &c->syms[c->n];
	int ret = add_string(c, name, &r->name);
	if (ret)
		return ret;
	r->value = sym->st_value;
	r->size = sym->st_size;
	r->flags = flags;
	c->n++;
	return 0;
}

static int raw_cmp(const void *a, const void *b, void *arg)
{
	const struct raw_sym *x = a, *y = b;
	const char *str = arg;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return strcmp(str + x->name, str + y->name);
}

static void sort_raw(struct collect *c)
{
	if (c->n > 1)
		sp_qsort_r(c->syms, c->n, sizeof(*c->syms), raw_cmp, c->str);
}

/* ---- reading a symbol table -------------------------------------------- */

static bool wanted(const GElf_Sym *sym)
{
	int type = GELF_ST_TYPE(sym->st_info);

	return (type == STT_FUNC || type == STT_GNU_IFUNC) &&
	       sym->st_shndx != SHN_UNDEF && sym->st_value != 0;
}

static unsigned sym_flags(const GElf_Sym *sym)
{
	int bind = GELF_ST_BIND(sym->st_info);
	unsigned flags = 0;

	if (GELF_ST_TYPE(sym->st_info) == STT_GNU_IFUNC)
		flags |= F_IFUNC;
	if (bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE)
		flags |= F_GLOBAL;
	return flags;
}

/* A symbol table section, checked: its data, entry count and string table
 * section index. */
struct symtab {
	Elf_Data *data;
	size_t count;
	size_t strndx;
};

static int open_symtab(Elf *elf, Elf_Scn *scn, struct symtab *st,
		       const char *path, char *err, size_t errlen)
{
	GElf_Shdr shdr, strhdr;
	size_t shnum;
	size_t entsize = gelf_fsize(elf, ELF_T_SYM, 1, EV_CURRENT);

	if (!gelf_getshdr(scn, &shdr) || elf_getshdrnum(elf, &shnum) != 0)
		goto corrupt;
	/* Compressed symbol tables do not occur in practice; refuse rather
	 * than parse compressed bytes as symbols. */
	if (shdr.sh_flags & SHF_COMPRESSED)
		goto corrupt;
	if (shdr.sh_entsize != entsize || shdr.sh_size % entsize != 0)
		goto corrupt;
	if (shdr.sh_link == SHN_UNDEF || shdr.sh_link >= shnum)
		goto corrupt;
	Elf_Scn *strscn = elf_getscn(elf, shdr.sh_link);
	if (!strscn || !gelf_getshdr(strscn, &strhdr) || strhdr.sh_type != SHT_STRTAB)
		goto corrupt;
	st->data = elf_getdata(scn, NULL);
	if (!st->data || st->data->d_size != shdr.sh_size)
		goto corrupt;
	st->count = shdr.sh_size / entsize;
	st->strndx = shdr.sh_link;
	return 0;
corrupt:;
	int e = elf_errno();     /* reading it clears it: once */
	snprintf(err, errlen, "'%s': corrupt symbol table%s%s", path,
		 e ? ": " : "", e ? elf_errmsg(e) : "");
	return -EINVAL;
}

static int read_sym(Elf *elf, const struct symtab *st, size_t i, GElf_Sym *sym,
		    const char **name, const char *path, char *err, size_t errlen)
{
	if (!gelf_getsym(st->data, (int)i, sym)) {
		snprintf(err, errlen, "'%s': bad symbol %zu: %s", path, i, elf_errmsg(-1));
		return -EINVAL;
	}
	*name = NULL;
	if (!wanted(sym))
		return 0;
	*name = elf_strptr(elf, st->strndx, sym->st_name);
	if (!*name) {
		snprintf(err, errlen, "'%s': symbol %zu has a bad name offset", path, i);
		return -EINVAL;
	}
	return 0;
}

static int read_symtab(Elf *elf, Elf_Scn *scn, struct collect *c,
		       const char *path, char *err, size_t errlen)
{
	struct symtab st;
	int ret = open_symtab(elf, scn, &st, path, err, errlen);

	/* Entry 0 is the reserved null symbol. */
	for (size_t i = 1; ret == 0 && i < st.count; i++) {
		GElf_Sym sym;
		const char *name;
		ret = read_sym(elf, &st, i, &sym, &name, path, err, errlen);
		if (ret == 0 && name && name[0])
			ret = add_sym(c, name, &sym, sym_flags(&sym));
	}
	return ret;
}

/* .gnu.version for DYNSYM, if it is present and consistent; else NULL. */
static Elf_Data *versym_data(Elf *elf, size_t dynsym_ndx, size_t count)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;

	while ((scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_GNU_versym)
			continue;
		if (shdr.sh_link != dynsym_ndx)
			return NULL;
		Elf_Data *d = elf_getdata(scn, NULL);
		if (!d || d->d_size != count * sizeof(GElf_Versym))
			return NULL;
		return d;
	}
	return NULL;
}

/* Mark the symbol in the sorted symtab set that is this .dynsym symbol, or
 * report that there is none. */
static bool mark_in_symtab(struct collect *c, size_t n_symtab, const char *name,
			   const GElf_Sym *sym, unsigned flags)
{
	size_t lo = 0, hi = n_symtab;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->syms[mid].value < sym->st_value)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < n_symtab && c->syms[i].value == sym->st_value; i++) {
		struct raw_sym *r = &c->syms[i];
		if ((r->flags & F_GLOBAL) == (flags & F_GLOBAL) &&
		    strcmp(c->str + r->name, name) == 0) {
			r->flags |= F_DYNSYM | (flags & F_HIDDEN_VER);
			return true;
		}
	}
	return false;
}

/* Merge .dynsym into C, whose first N_SYMTAB entries (sorted) came from a
 * .symtab. */
static int merge_dynsym(Elf *elf, Elf_Scn *scn, struct collect *c, size_t n_symtab,
			const char *path, char *err, size_t errlen)
{
	struct symtab st;
	int ret = open_symtab(elf, scn, &st, path, err, errlen);
	if (ret)
		return ret;
	Elf_Data *vs = versym_data(elf, elf_ndxscn(scn), st.count);

	for (size_t i = 1; i < st.count; i++) {
		GElf_Sym sym;
		GElf_Versym ver;
		const char *name;
		ret = read_sym(elf, &st, i, &sym, &name, path, err, errlen);
		if (ret)
			return ret;
		if (!name || !name[0])
			continue;
		unsigned flags = sym_flags(&sym) | F_DYNSYM;
		if (vs && gelf_getversym(vs, (int)i, &ver) && (ver & 0x8000))
			flags |= F_HIDDEN_VER;
		if (mark_in_symtab(c, n_symtab, name, &sym, flags))
			continue;
		ret = add_sym(c, name, &sym, flags);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- sections, notes, build-id ----------------------------------------- */

static Elf_Scn *find_section(Elf *elf, Elf64_Word type)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;

	while ((scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, &shdr) && shdr.sh_type == type)
			return scn;
	return NULL;
}

/* NT_GNU_BUILD_ID in DATA (a note segment or section); its length or 0. */
static size_t build_id_in(Elf_Data *data, uint8_t *id)
{
	size_t off = 0, next, name_off, desc_off;
	GElf_Nhdr nh;

	while (data && off < data->d_size &&
	       (next = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
		const char *base = data->d_buf;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp(base + name_off, "GNU", 4) == 0 &&
		    nh.n_descsz >= 2 && nh.n_descsz <= MAX_BUILD_ID) {
			memcpy(id, base + desc_off, nh.n_descsz);
			return nh.n_descsz;
		}
		off = next;
	}
	return 0;
}

static size_t read_build_id(Elf *elf, uint8_t *id)
{
	size_t phnum, len;
	GElf_Phdr ph;

	if (elf_getphdrnum(elf, &phnum) == 0) {
		for (size_t i = 0; i < phnum; i++) {
			if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_NOTE)
				continue;
			Elf_Type t = ph.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR;
			len = build_id_in(elf_getdata_rawchunk(elf, (int64_t)ph.p_offset,
							       ph.p_filesz, t), id);
			if (len)
				return len;
		}
	}
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;
	while ((scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE)
			continue;
		if ((len = build_id_in(elf_getdata(scn, NULL), id)))
			return len;
	}
	return 0;
}

static bool debug_file_path(const uint8_t *id, size_t len, char *buf, size_t buflen)
{
	const char *root = debug_root[0] ? debug_root : DEFAULT_DEBUG_ROOT;
	char hex[2 * MAX_BUILD_ID + 1];

	for (size_t i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", id[i]);
	int w = snprintf(buf, buflen, "%s/.build-id/%.2s/%s.debug", root, hex, hex + 2);
	return w > 0 && (size_t)w < buflen;
}

/* ---- opening ----------------------------------------------------------- */

static int check_header(Elf *elf, GElf_Ehdr *eh, const char *path, char *err, size_t errlen)
{
	if (elf_kind(elf) != ELF_K_ELF) {
		snprintf(err, errlen, "'%s': not an ELF file", path);
		return -ENOEXEC;
	}
	if (gelf_getclass(elf) != ELFCLASS64 || !gelf_getehdr(elf, eh)) {
		snprintf(err, errlen, "'%s': not a 64-bit ELF file", path);
		return -ENOEXEC;
	}
	if (eh->e_machine != EM_X86_64) {
		snprintf(err, errlen, "'%s': not an x86-64 ELF file (e_machine %u)",
			 path, eh->e_machine);
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN) {
		snprintf(err, errlen, "'%s': not an executable or shared object (e_type %u)",
			 path, eh->e_type);
		return -ENOEXEC;
	}
	/* libelf quietly reports no sections when the section header table
	 * lies beyond the end of the file: say what is wrong. */
	size_t shnum;
	if (eh->e_shoff && (elf_getshdrnum(elf, &shnum) != 0 || shnum == 0)) {
		snprintf(err, errlen, "'%s': section headers missing or truncated", path);
		return -EINVAL;
	}
	return 0;
}

static int open_elf(const char *path, int *fd, Elf **elf, char *err, size_t errlen)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(e));
		return -e;
	}
	*elf = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	if (!*elf) {
		snprintf(err, errlen, "'%s': %s", path, elf_errmsg(-1));
		close(*fd);
		return -ENOEXEC;
	}
	return 0;
}

static void close_elf(int fd, Elf *elf)
{
	elf_end(elf);
	close(fd);
}

static int read_segments(Elf *elf, struct sp_elf *e, char *err, size_t errlen)
{
	size_t phnum;
	GElf_Phdr ph;

	if (elf_getphdrnum(elf, &phnum) != 0) {
		snprintf(err, errlen, "'%s': bad program headers: %s", e->path, elf_errmsg(-1));
		return -EINVAL;
	}
	e->segs = sp_calloc(phnum ? phnum : 1, sizeof(*e->segs));
	if (!e->segs)
		return -ENOMEM;
	for (size_t i = 0; i < phnum; i++) {
		if (!gelf_getphdr(elf, (int)i, &ph)) {
			snprintf(err, errlen, "'%s': bad program header %zu", e->path, i);
			return -EINVAL;
		}
		if (ph.p_type != PT_LOAD)
			continue;
		e->segs[e->n_segs++] = (struct sp_segment){
			.vaddr = ph.p_vaddr, .memsz = ph.p_memsz,
			.offset = ph.p_offset, .filesz = ph.p_filesz, .flags = ph.p_flags,
		};
	}
	return 0;
}

/* Does ELF have a section called NAME? */
static bool has_section_named(Elf *elf, const char *name)
{
	size_t shstrndx;
	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		return false;
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr sh;
		const char *n;
		if (gelf_getshdr(scn, &sh) && (n = elf_strptr(elf, shstrndx, sh.sh_name)) && strcmp(n, name) == 0)
			return true;
	}
	return false;
}

/* The build-id debug file's .symtab into C, if there is a usable one.  A
 * missing or unusable debug file is not an error: we fall back to .dynsym. */
static void read_debug_symtab(Elf *elf, struct sp_elf *e, struct collect *c)
{
	uint8_t id[MAX_BUILD_ID], did[MAX_BUILD_ID];
	char dpath[PATH_MAX], derr[256];
	size_t len = read_build_id(elf, id);
	GElf_Ehdr eh;
	Elf *delf;
	int fd;

	if (!len || !debug_file_path(id, len, dpath, sizeof(dpath)))
		return;
	if (open_elf(dpath, &fd, &delf, derr, sizeof(derr)) != 0)
		return;
	Elf_Scn *scn = find_section(delf, SHT_SYMTAB);
	/* A stale file under the same name must not lend us its symbols. */
	if (check_header(delf, &eh, dpath, derr, sizeof(derr)) == 0 && scn &&
	    read_build_id(delf, did) == len && memcmp(id, did, len) == 0) {
		size_t before = c->n;
		if (read_symtab(delf, scn, c, dpath, derr, sizeof(derr)) == 0) {
			e->debug_path = sp_strdup(dpath);
			e->has_symtab = e->debug_path != NULL;
		}
		if (!e->has_symtab)
			c->n = before;
	}
	close_elf(fd, delf);
}

static int read_symbols(Elf *elf, struct sp_elf *e, struct collect *c,
			char *err, size_t errlen)
{
	Elf_Scn *symtab = find_section(elf, SHT_SYMTAB);
	Elf_Scn *dynsym = find_section(elf, SHT_DYNSYM);
	int ret;

	if (symtab) {
		ret = read_symtab(elf, symtab, c, e->path, err, errlen);
		if (ret)
			return ret;
		e->has_symtab = true;
	} else {
		read_debug_symtab(elf, e, c);
	}
	if (!symtab && !dynsym && !e->has_symtab) {
		snprintf(err, errlen, "'%s': no symbol table", e->path);
		return -ENODATA;
	}
	sort_raw(c);
	if (dynsym) {
		ret = merge_dynsym(elf, dynsym, c, c->n, e->path, err, errlen);
		if (ret)
			return ret;
		sort_raw(c);
	}
	return 0;
}

static bool hidden_version(const struct sp_elf *e, const struct sp_sym *s);
static int score(const struct sp_elf *e, const struct sp_sym *s);

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const struct sp_sym *const *)a)->name, (*(const struct sp_sym *const *)b)->name);
}

/* What the queries need beyond the symbols themselves (from a fresh read
 * or a cached one alike): the largest size. */
static int derive(struct sp_elf *e)
{
	struct priv *p = e->priv;
	p->max_size = 0;
	for (size_t i = 0; i < e->n_syms; i++)
		if (e->syms[i].size > p->max_size)
			p->max_size = e->syms[i].size;
	return 0;
}

/* Which hidden versions are shadowed, computed at the first question (a
 * glob that matched a hidden version; a plain name like malloc never
 * asks).  sp_elf_match used to look each hidden name up with a linear
 * sp_elf_lookup, O(hidden x symbols): 2 % of attaching libc:*.  Here: the
 * hidden names sorted, each default-version name searched among them. */
static int find_shadowed(const struct sp_elf *e)
{
	struct priv *p = e->priv;
	size_t n_hidden = 0;
	bool *sh = sp_calloc(e->n_syms ? e->n_syms : 1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_syms; i++)
		n_hidden += p->hidden_ver[i];
	const struct sp_sym **h = sp_malloc((n_hidden ? n_hidden : 1) * sizeof(*h));
	if (!h) {
		sp_free(sh);
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < e->n_syms; i++)
		if (p->hidden_ver[i])
			h[k++] = &e->syms[i];
	sp_qsort(h, n_hidden, sizeof(*h), by_name);
	for (size_t i = 0; i < e->n_syms; i++) {
		const struct sp_sym *s = &e->syms[i];
		if (score(e, s) != 3)
			continue;
		size_t lo = 0, hi = n_hidden;   /* the first hidden name >= s's */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(h[mid]->name, s->name) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < n_hidden && strcmp(h[lo]->name, s->name) == 0; lo++)
			sh[h[lo] - e->syms] = true;
	}
	sp_free(h);
	p->shadowed = sh;   /* complete: from here on the answer */
	return 0;
}

/* ---- .eh_frame extents (ehframe.h) ---- */

struct extents {
	const struct sp_elf *e;
	struct sp_extent *v;
	size_t n, cap;
};

/* Is [LO, HI) inside one executable segment? */
static bool in_exec_segment(const struct sp_elf *e, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < e->n_segs; i++) {
		const struct sp_segment *s = &e->segs[i];
		if ((s->flags & PF_X) && lo >= s->vaddr && hi - s->vaddr <= s->memsz && hi > lo)
			return true;
	}
	return false;
}

static int add_extent(void *ctx, uint64_t lo, uint64_t hi)
{
	struct extents *x = ctx;
	if (!in_exec_segment(x->e, lo, hi))
		return 0;                     /* not code of this file: not an extent */
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 1024;
		struct sp_extent *v = sp_realloc(x->v, cap * sizeof(*v));
		if (!v)
			return -1;
		x->v = v;
		x->cap = cap;
	}
	x->v[x->n++] = (struct sp_extent){ lo, hi };
	return 0;
}

static int cmp_extent(const void *a, const void *b)
{
	const struct sp_extent *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

/* E->ext from ELF's .eh_frame.  Nothing (no error) when there is none or
 * it cannot be read: extents only add proofs.  Duplicates are merged;
 * extents that overlap another are dropped (a file that says two things
 * about a byte says nothing about it). */
static int read_extents(Elf *elf, struct sp_elf *e)
{
	size_t shstrndx;
	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		return 0;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	while ((scn = elf_nextscn(elf, scn))) {
		const char *n;
		if (gelf_getshdr(scn, &sh) && sh.sh_type != SHT_NOBITS &&
		    (n = elf_strptr(elf, shstrndx, sh.sh_name)) && strcmp(n, ".eh_frame") == 0)
			break;
	}
	Elf_Data *d;
	if (!scn || !(d = elf_getdata(scn, NULL)) || !d->d_buf || d->d_size > sh.sh_size)
		return 0;
	struct extents x = { .e = e };
	if (sp_ehframe_walk(d->d_buf, d->d_size, sh.sh_addr, add_extent, &x) < 0) {
		sp_free(x.v);
		return -ENOMEM;
	}
	/* linkers mostly keep FDEs in address order: sort only when not */
	bool sorted = true;
	for (size_t i = 1; i < x.n && sorted; i++)
		sorted = cmp_extent(&x.v[i - 1], &x.v[i]) <= 0;
	if (!sorted)
		sp_qsort(x.v, x.n, sizeof(*x.v), cmp_extent);
	size_t k = 0;
	for (size_t i = 0; i < x.n; i++) {
		if (k && x.v[k - 1].lo == x.v[i].lo && x.v[k - 1].hi == x.v[i].hi)
			continue;
		x.v[k++] = x.v[i];
	}
	/* drop every extent overlapping another (sorted by start: a run) */
	size_t m = 0;
	for (size_t i = 0; i < k;) {
		size_t j = i + 1;
		uint64_t hi = x.v[i].hi;
		while (j < k && x.v[j].lo < hi) {
			if (x.v[j].hi > hi)
				hi = x.v[j].hi;
			j++;
		}
		if (j == i + 1)
			x.v[m++] = x.v[i];
		i = j;
	}
	e->ext = x.v;
	e->n_ext = m;
	if (!m) {
		sp_free(x.v);
		e->ext = NULL;
	}
	return 0;
}

/* Move the collected symbols into E; C's buffers become E's. */
static int finish(struct sp_elf *e, struct collect *c)
{
	struct priv *p = sp_calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	e->priv = p;
	p->strings = c->str;
	p->strings_len = c->str_len;
	c->str = NULL;
	e->syms = sp_calloc(c->n ? c->n : 1, sizeof(*e->syms));
	p->hidden_ver = sp_calloc(c->n ? c->n : 1, sizeof(*p->hidden_ver));
	if (!e->syms || !p->hidden_ver)
		return -ENOMEM;
	for (size_t i = 0; i < c->n; i++) {
		const struct raw_sym *r = &c->syms[i];
		e->syms[i] = (struct sp_sym){
			.name = p->strings + r->name, .value = r->value, .size = r->size,
			.is_ifunc = r->flags & F_IFUNC, .is_global = r->flags & F_GLOBAL,
			.in_dynsym = r->flags & F_DYNSYM,
		};
		p->hidden_ver[i] = r->flags & F_HIDDEN_VER;
	}
	e->n_syms = c->n;
	return derive(e);
}

int sp_elf_open(const char *path, struct sp_elf **out, char *err, size_t errlen)
{
	struct collect c = { 0 };
	struct sp_elf *e = NULL;
	GElf_Ehdr eh;
	Elf *elf;
	int fd, ret;

	if (errlen)
		err[0] = '\0';
	*out = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(err, errlen, "libelf: %s", elf_errmsg(-1));
		return -ENOSYS;
	}
	ret = open_elf(path, &fd, &elf, err, errlen);
	if (ret)
		return ret;
	ret = check_header(elf, &eh, path, err, errlen);
	if (ret)
		goto out;
	ret = -ENOMEM;
	e = sp_calloc(1, sizeof(*e));
	if (!e || !(e->path = sp_strdup(path)))
		goto out;
	e->e_type = eh.e_type;
	e->has_except_table = has_section_named(elf, ".gcc_except_table");
	e->build_id_len = read_build_id(elf, e->build_id);
	ret = read_segments(elf, e, err, errlen);
	if (ret == 0)
		ret = read_symbols(elf, e, &c, err, errlen);
	if (ret == 0)
		ret = finish(e, &c);
	if (ret == 0)
		ret = read_extents(elf, e);
out:
	if (ret == -ENOMEM && errlen && !err[0])
		snprintf(err, errlen, "'%s': out of memory", path);
	close_elf(fd, elf);
	sp_free(c.syms);
	sp_free(c.str);
	if (ret) {
		sp_elf_close(e);
		return ret;
	}
	*out = e;
	return 0;
}

void sp_elf_close(struct sp_elf *e)
{
	if (!e)
		return;
	struct priv *p = e->priv;
	if (p) {
		sp_free(p->strings);
		sp_free(p->hidden_ver);
		sp_free(p->shadowed);
		sp_free(p);
	}
	sp_free(e->syms);
	sp_free(e->ext);
	sp_free(e->segs);
	sp_free(e->debug_path);
	sp_free(e->path);
	sp_free(e);
}

/* ---- queries ----------------------------------------------------------- */

static bool hidden_version(const struct sp_elf *e, const struct sp_sym *s)
{
	const struct priv *p = e->priv;
	return p->hidden_ver[s - e->syms];
}

/* Which of several names for one address to show: a global name dlsym can
 * find beats another global name (a .symtab one, which for versioned
 * definitions carries the version: "memcpy@GLIBC_2.2.5"), beats a .dynsym
 * name of a non-default version (plain "memcpy", but not the memcpy dlsym
 * finds), beats a local. */
static int score(const struct sp_elf *e, const struct sp_sym *s)
{
	if (s->is_global && s->in_dynsym && !hidden_version(e, s))
		return 3;
	if (s->is_global && !s->in_dynsym)
		return 2;
	return s->is_global ? 1 : 0;
}

/* A non-default version's .dynsym name when the default version exists
 * under the same name: "memcpy" means that one, so globs skip this. */
static bool shadowed(const struct sp_elf *e, const struct sp_sym *s)
{
	const struct priv *p = e->priv;
	if (!hidden_version(e, s))
		return false;
	if (!p->shadowed && find_shadowed(e) != 0) {
		/* out of memory: the linear look-up */
		const struct sp_sym *l = sp_elf_lookup(e, s->name);
		return l && l != s && score(e, l) == 3;
	}
	return p->shadowed[s - e->syms];
}

long sp_elf_match(const struct sp_elf *e, const char *glob, const struct sp_sym ***out)
{
	const struct sp_sym **res = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	/* a plain name (the common case) needs no fnmatch; so does a pattern
	 * that is a symbol's very name (Go's main.(*T).M, main.F[go.shape.int_0]) */
	bool plain = !strpbrk(glob, "*?[\\");
	for (size_t i = 0; !plain && i < e->n_syms; i++)
		plain = strcmp(glob, e->syms[i].name) == 0;
	for (size_t i = 0; i < e->n_syms;) {
		const struct sp_sym *best = NULL;
		size_t j = i;
		/* One group of symbols at the same address. */
		for (; j < e->n_syms && e->syms[j].value == e->syms[i].value; j++) {
			const struct sp_sym *s = &e->syms[j];
			/* plain: the first byte first (a strcmp per symbol was most
			 * of resolving one libc name, 10k symbols) */
			if ((plain ? glob[0] != s->name[0] || strcmp(glob, s->name)
				   : fnmatch(glob, s->name, 0)) != 0 || shadowed(e, s))
				continue;
			if (!best || score(e, s) > score(e, best))
				best = s;
		}
		i = j;
		if (!best)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			const struct sp_sym **r = sp_realloc(res, cap * sizeof(*r));
			if (!r) {
				sp_free(res);
				return -ENOMEM;
			}
			res = r;
		}
		res[n++] = best;
	}
	*out = res;
	return (long)n;
}

const struct sp_sym *sp_elf_lookup(const struct sp_elf *e, const char *name)
{
	const struct sp_sym *best = NULL;

	for (size_t i = 0; i < e->n_syms; i++) {
		const struct sp_sym *s = &e->syms[i];
		if (strcmp(s->name, name) == 0 && (!best || score(e, s) > score(e, best)))
			best = s;
	}
	return best;
}

static int leading_underscores(const char *name)
{
	int n = 0;
	while (name[n] == '_')
		n++;
	return n;
}

/* Among aliases, the name a person would call it: the better score, then
 * the fewer leading underscores (malloc, not __libc_malloc); walking down,
 * a full tie means earlier in sort order: the first name, as in
 * sp_elf_match. */
static bool at_least_as_good(const struct sp_elf *e, const struct sp_sym *s, const struct sp_sym *than)
{
	int a = score(e, s), b = score(e, than);
	if (a != b)
		return a > b;
	return leading_underscores(s->name) <= leading_underscores(than->name);
}

/* The first of the N elements at BASE, STRIDE bytes apart, whose uint64_t
 * at offset OFF is above V (they are sorted by it): the symbols by start,
 * the extents by low end. */
static size_t upper_u64(const void *base, size_t n, size_t stride, size_t off, uint64_t v)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t x;
		memcpy(&x, (const char *)base + mid * stride + off, sizeof(x));
		if (x <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t sp_elf_upper(const struct sp_elf *e, uint64_t vaddr)
{
	return upper_u64(e->syms, e->n_syms, sizeof(*e->syms), offsetof(struct sp_sym, value), vaddr);
}

const struct sp_sym *sp_elf_containing(const struct sp_elf *e, uint64_t vaddr)
{
	const struct priv *p = e->priv;
	const struct sp_sym *best = NULL, *exact = NULL;
	size_t lo = sp_elf_upper(e, vaddr);   /* the first symbol above VADDR */
	/* Walk down; no symbol starting more than max_size below VADDR can
	 * cover it.  The first cover found starts nearest (innermost). */
	for (size_t i = lo; i-- > 0;) {
		const struct sp_sym *s = &e->syms[i];
		uint64_t d = vaddr - s->value;
		if (best && s->value != best->value)
			break;
		if (d != 0 && d >= p->max_size)
			break;
		if (s->size && d < s->size) {
			if (!best || at_least_as_good(e, s, best))
				best = s;
		} else if (d == 0 && (!exact || at_least_as_good(e, s, exact))) {
			exact = s;
		}
	}
	return best ? best : exact;
}

int sp_elf_vaddr_to_offset(const struct sp_elf *e, uint64_t vaddr, uint64_t *off)
{
	for (size_t i = 0; i < e->n_segs; i++) {
		const struct sp_segment *s = &e->segs[i];
		if (vaddr >= s->vaddr && vaddr - s->vaddr < s->filesz) {
			*off = s->offset + (vaddr - s->vaddr);
			return 0;
		}
	}
	return -ENOENT;
}

bool sp_elf_vaddr_is_text(const struct sp_elf *e, uint64_t vaddr)
{
	for (size_t i = 0; i < e->n_segs; i++) {
		const struct sp_segment *s = &e->segs[i];
		if ((s->flags & PF_X) && vaddr >= s->vaddr && vaddr - s->vaddr < s->memsz)
			return true;
	}
	return false;
}

/* Any symbol (data too) named NAME in PATH's .symtab, else .dynsym.  For the
 * rare lookups the function table does not serve (USDT arguments naming a
 * static variable).  0 and *VALUE, or -ENOENT. */
static int find_in(Elf *elf, Elf_Scn *scn, const char *name, uint64_t *value)
{
	GElf_Shdr sh;
	Elf_Data *data;
	if (!scn || !gelf_getshdr(scn, &sh) || !sh.sh_entsize || !(data = elf_getdata(scn, NULL)))
		return -ENOENT;
	size_t n = sh.sh_size / sh.sh_entsize;
	for (size_t i = 0; i < n; i++) {
		GElf_Sym sym;
		const char *s;
		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
			continue;
		if ((s = elf_strptr(elf, sh.sh_link, sym.st_name)) && strcmp(s, name) == 0) {
			*value = sym.st_value;
			return 0;
		}
	}
	return -ENOENT;
}

int sp_elf_find_any_symbol(const char *path, const char *name, uint64_t *value)
{
	int fd;
	Elf *elf;
	char err[64];
	if (elf_version(EV_CURRENT) == EV_NONE || open_elf(path, &fd, &elf, err, sizeof(err)) != 0)
		return -ENOENT;
	int rc = find_in(elf, find_section(elf, SHT_SYMTAB), name, value);
	if (rc)
		rc = find_in(elf, find_section(elf, SHT_DYNSYM), name, value);
	close_elf(fd, elf);
	return rc;
}

const struct sp_sym *sp_elf_next_after(const struct sp_elf *e, uint64_t vaddr)
{
	size_t lo = sp_elf_upper(e, vaddr);
	return lo < e->n_syms ? &e->syms[lo] : NULL;
}

/* ---- a flat copy, for the start-up cache (symcache.c) -------------------
 * Everything sp_elf_open produced, in one buffer: a header, the segments,
 * the .eh_frame extents, the symbols (names as offsets into the strings),
 * the strings, the debug file's path.  Native byte order: the cache never
 * leaves the machine.  A field added to struct sp_elf must be added here
 * (and FLAT_MAGIC changed): test_symcache compares a loaded copy with a
 * read one field by field. */

#define FLAT_MAGIC "SPELFSY2"    /* 2: the .eh_frame extents */

struct flat_head {
	char magic[8];
	uint32_t e_type;
	uint8_t has_symtab, has_except_table, has_debug_path, pad;
	uint32_t build_id_len;
	uint8_t build_id[MAX_BUILD_ID];
	uint64_t n_segs, n_ext, n_syms, str_len, debug_path_len;
};

struct flat_seg {
	uint64_t vaddr, memsz, offset, filesz, flags;
};

struct flat_sym {
	uint64_t value, size, name;
	uint32_t flags, pad;
};

void *sp_elf_flatten(const struct sp_elf *e, size_t *len)
{
	const struct priv *p = e->priv;
	size_t dlen = e->debug_path ? strlen(e->debug_path) + 1 : 0;
	/* no symbols, no strings: one NUL all the same (never an empty table) */
	size_t slen = p->strings_len ? p->strings_len : 1;
	size_t total = sizeof(struct flat_head) + e->n_segs * sizeof(struct flat_seg) +
		       e->n_ext * sizeof(struct sp_extent) + e->n_syms * sizeof(struct flat_sym) + slen + dlen;
	uint8_t *buf = sp_calloc(1, total), *q = buf;
	if (!buf)
		return NULL;
	struct flat_head h = {
		.e_type = e->e_type, .has_symtab = e->has_symtab,
		.has_except_table = e->has_except_table, .has_debug_path = e->debug_path != NULL,
		.build_id_len = (uint32_t)e->build_id_len, .n_segs = e->n_segs, .n_ext = e->n_ext,
		.n_syms = e->n_syms,
		.str_len = slen, .debug_path_len = dlen,
	};
	memcpy(h.magic, FLAT_MAGIC, 8);
	memcpy(h.build_id, e->build_id, sizeof(h.build_id));
	memcpy(q, &h, sizeof(h));
	q += sizeof(h);
	for (size_t i = 0; i < e->n_segs; i++, q += sizeof(struct flat_seg)) {
		const struct sp_segment *s = &e->segs[i];
		struct flat_seg f = { s->vaddr, s->memsz, s->offset, s->filesz, s->flags };
		memcpy(q, &f, sizeof(f));
	}
	if (e->n_ext) {
		memcpy(q, e->ext, e->n_ext * sizeof(struct sp_extent));
		q += e->n_ext * sizeof(struct sp_extent);
	}
	for (size_t i = 0; i < e->n_syms; i++, q += sizeof(struct flat_sym)) {
		const struct sp_sym *s = &e->syms[i];
		struct flat_sym f = {
			.value = s->value, .size = s->size, .name = (uint64_t)(s->name - p->strings),
			.flags = (s->is_ifunc ? F_IFUNC : 0) | (s->is_global ? F_GLOBAL : 0) |
				 (s->in_dynsym ? F_DYNSYM : 0) | (p->hidden_ver[i] ? F_HIDDEN_VER : 0),
		};
		memcpy(q, &f, sizeof(f));
	}
	if (p->strings_len)
		memcpy(q, p->strings, p->strings_len);   /* else the calloc'ed NUL */
	q += slen;
	if (dlen)
		memcpy(q, e->debug_path, dlen);
	*len = total;
	return buf;
}

/* Checked as untrusted input, like a file: every count against the length,
 * every name offset against the strings, the sort order the queries' binary
 * searches rely on. */
int sp_elf_unflatten(const void *data, size_t len, const char *path, struct sp_elf **out,
		     char *why, size_t whylen)
{
	const uint8_t *d = data;
	struct flat_head h;
	struct sp_elf *e = NULL;
	const char *bad = NULL;
	*out = NULL;
	if (len < sizeof(h)) {
		snprintf(why, whylen, "truncated (%zu bytes, no header)", len);
		return -EINVAL;
	}
	memcpy(&h, d, sizeof(h));
	size_t rest = len - sizeof(h);
	if (memcmp(h.magic, FLAT_MAGIC, 8) != 0)
		bad = "not a symbol table (magic)";
	else if ((h.e_type != ET_EXEC && h.e_type != ET_DYN) || h.build_id_len > MAX_BUILD_ID ||
		 h.has_symtab > 1 || h.has_except_table > 1 || h.has_debug_path > 1 ||
		 h.has_debug_path != (h.debug_path_len != 0))
		bad = "bad header fields";
	else if (h.n_segs > rest / sizeof(struct flat_seg) ||
		 h.n_ext > (rest - h.n_segs * sizeof(struct flat_seg)) / sizeof(struct sp_extent) ||
		 h.n_syms > (rest - h.n_segs * sizeof(struct flat_seg) - h.n_ext * sizeof(struct sp_extent)) /
				    sizeof(struct flat_sym) ||
		 h.str_len == 0 || h.str_len > rest || h.debug_path_len > rest ||
		 h.n_segs * sizeof(struct flat_seg) + h.n_ext * sizeof(struct sp_extent) +
				 h.n_syms * sizeof(struct flat_sym) + h.str_len + h.debug_path_len != rest)
		bad = "lengths do not add up (truncated or padded)";
	if (bad) {
		snprintf(why, whylen, "%s", bad);
		return -EINVAL;
	}
	const uint8_t *segs = d + sizeof(h);
	const uint8_t *exts = segs + h.n_segs * sizeof(struct flat_seg);
	const uint8_t *syms = exts + h.n_ext * sizeof(struct sp_extent);
	const char *str = (const char *)(syms + h.n_syms * sizeof(struct flat_sym));
	const char *dpath = str + h.str_len;
	if (str[h.str_len - 1] != '\0' || (h.debug_path_len && (dpath[h.debug_path_len - 1] != '\0' ||
								 strlen(dpath) + 1 != h.debug_path_len))) {
		snprintf(why, whylen, "unterminated strings");
		return -EINVAL;
	}
	struct priv *p;
	if (!(e = sp_calloc(1, sizeof(*e))) || !(e->path = sp_strdup(path)) || !(p = sp_calloc(1, sizeof(*p))))
		goto nomem;
	e->priv = p;
	e->e_type = (uint16_t)h.e_type;
	e->has_symtab = h.has_symtab;
	e->has_except_table = h.has_except_table;
	e->build_id_len = h.build_id_len;
	memcpy(e->build_id, h.build_id, sizeof(e->build_id));
	if (h.debug_path_len && !(e->debug_path = sp_strdup(dpath)))
		goto nomem;
	e->segs = sp_calloc(h.n_segs ? h.n_segs : 1, sizeof(*e->segs));
	e->syms = sp_calloc(h.n_syms ? h.n_syms : 1, sizeof(*e->syms));
	p->hidden_ver = sp_calloc(h.n_syms ? h.n_syms : 1, sizeof(*p->hidden_ver));
	p->strings = sp_malloc(h.str_len);
	if (!e->segs || !e->syms || !p->hidden_ver || !p->strings)
		goto nomem;
	sp_prefault(e->syms, h.n_syms * sizeof(*e->syms));
	sp_prefault(p->strings, h.str_len);
	memcpy(p->strings, str, h.str_len);
	p->strings_len = h.str_len;
	for (size_t i = 0; i < h.n_segs; i++) {
		struct flat_seg f;
		memcpy(&f, segs + i * sizeof(f), sizeof(f));
		if (f.flags > UINT32_MAX) {   /* p_flags as the file has them */
			bad = "bad segment flags";
			break;
		}
		e->segs[i] = (struct sp_segment){ f.vaddr, f.memsz, f.offset, f.filesz, (uint32_t)f.flags };
	}
	e->n_segs = h.n_segs;
	/* the extents' queries assume them sorted, disjoint and non-empty */
	if (!bad && h.n_ext) {
		if (!(e->ext = sp_malloc(h.n_ext * sizeof(*e->ext))))
			goto nomem;
		memcpy(e->ext, exts, h.n_ext * sizeof(*e->ext));
		e->n_ext = h.n_ext;
		for (size_t i = 0; i < h.n_ext && !bad; i++)
			if (e->ext[i].lo >= e->ext[i].hi || (i && e->ext[i - 1].hi > e->ext[i].lo) ||
			    !in_exec_segment(e, e->ext[i].lo, e->ext[i].hi))
				bad = "extents out of order or outside the text";
	}
	for (size_t i = 0; !bad && i < h.n_syms; i++) {
		struct flat_sym f;
		memcpy(&f, syms + i * sizeof(f), sizeof(f));
		if (f.name >= h.str_len || (f.flags & ~(unsigned)(F_IFUNC | F_GLOBAL | F_DYNSYM | F_HIDDEN_VER)) ||
		    f.pad || f.value == 0) {
			bad = "bad symbol record";
			break;
		}
		e->syms[i] = (struct sp_sym){
			.name = p->strings + f.name, .value = f.value, .size = f.size,
			.is_ifunc = f.flags & F_IFUNC, .is_global = f.flags & F_GLOBAL,
			.in_dynsym = f.flags & F_DYNSYM,
		};
		p->hidden_ver[i] = f.flags & F_HIDDEN_VER;
		if (i && (e->syms[i - 1].value > f.value ||
			  (e->syms[i - 1].value == f.value && strcmp(e->syms[i - 1].name, e->syms[i].name) > 0)))
			bad = "symbols out of order";
	}
	e->n_syms = h.n_syms;
	if (bad) {
		snprintf(why, whylen, "%s", bad);
		sp_elf_close(e);
		return -EINVAL;
	}
	if (derive(e) != 0)
		goto nomem;
	*out = e;
	return 0;
nomem:
	snprintf(why, whylen, "out of memory");
	sp_elf_close(e);
	return -ENOMEM;
}

size_t sp_elf_debug_candidate(const struct sp_elf *e, char *buf, size_t len)
{
	if (!e->build_id_len || !debug_file_path(e->build_id, e->build_id_len, buf, len))
		return 0;
	return strlen(buf);
}

const char *sp_elf_debug_root(void)
{
	return debug_root[0] ? debug_root : DEFAULT_DEBUG_ROOT;
}

size_t sp_elf_ext_upper(const struct sp_elf *e, uint64_t vaddr)
{
	return upper_u64(e->ext, e->n_ext, sizeof(*e->ext), offsetof(struct sp_extent, lo), vaddr);
}

bool sp_elf_extent(const struct sp_elf *e, uint64_t vaddr, uint64_t *lo, uint64_t *hi)
{
	size_t i = sp_elf_ext_upper(e, vaddr);
	if (i == 0 || vaddr >= e->ext[i - 1].hi)
		return false;   /* disjoint: only the last one starting at or below can hold it */
	*lo = e->ext[i - 1].lo;
	*hi = e->ext[i - 1].hi;
	return true;
}

uint64_t sp_elf_next_start(const struct sp_elf *e, uint64_t vaddr)
{
	const struct sp_sym *s = sp_elf_next_after(e, vaddr);
	size_t i = sp_elf_ext_upper(e, vaddr);
	uint64_t a = s ? s->value : 0;
	if (i < e->n_ext && (!a || e->ext[i].lo < a))
		a = e->ext[i].lo;
	return a;
}

bool sp_elf_covers(const struct sp_elf *e, uint64_t lo, uint64_t hi)
{
	uint64_t l, h;
	if (sp_elf_containing(e, lo) || sp_elf_extent(e, lo, &l, &h))
		return true;
	uint64_t next = sp_elf_next_start(e, lo);
	return next && next < hi;
}

uint64_t sp_elf_fde_size(const struct sp_elf *e, uint64_t start)
{
	uint64_t lo, hi;
	return sp_elf_extent(e, start, &lo, &hi) && lo == start ? hi - lo : 0;
}

bool sp_elf_func_extent(const struct sp_elf *e, uint64_t vaddr, uint64_t *start, uint64_t *size)
{
	const struct sp_sym *f = sp_elf_containing(e, vaddr);
	uint64_t lo, hi;
	if (f && f->size) {
		*start = f->value;
		*size = f->size;
		return true;
	}
	if (!sp_elf_extent(e, vaddr, &lo, &hi))
		return false;
	*start = lo;
	*size = hi - lo;
	return true;
}
