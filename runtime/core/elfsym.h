/* elfsym — function symbols of an ELF file, read with libelf.
 *
 * Reads .symtab where present, else .dynsym.  When the file has no .symtab
 * and a separate debug file is installed under /usr/lib/debug/.build-id/xx/
 * yyyy.debug (matching the file's NT_GNU_BUILD_ID), that file's .symtab is
 * used and the .dynsym symbols are merged in.  Only STT_FUNC and
 * STT_GNU_IFUNC symbols with a defined section are kept.  The file is
 * untrusted input: every offset and size is checked, a bad file is an error
 * with a message, never a crash.
 */
#ifndef SP_ELFSYM_H
#define SP_ELFSYM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_sym {
	const char *name;        /* points into the sp_elf's own storage */
	uint64_t value;          /* ELF virtual address */
	uint64_t size;           /* 0 when unknown */
	bool is_ifunc;           /* STT_GNU_IFUNC: value is the resolver */
	bool is_global;          /* STB_GLOBAL or STB_WEAK */
	bool in_dynsym;          /* also (or only) in .dynsym: dlsym can find it */
};

/* A function's code as its .eh_frame FDE gives it (ehframe.h). */
struct sp_extent {
	uint64_t lo, hi;         /* ELF virtual addresses, [lo, hi) */
};

struct sp_segment {
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags;          /* PF_X | PF_W | PF_R */
};

struct sp_elf {
	char *path;
	char *debug_path;        /* the build-id debug file used, or NULL */
	bool has_symtab;         /* symbols came from a .symtab (own or debug file) */
	uint16_t e_type;         /* ET_EXEC or ET_DYN */
	bool has_except_table;   /* .gcc_except_table: exception landing pads
				  * may sit anywhere inside functions */
	uint8_t build_id[64];    /* the file's GNU build ID (names its bytes: */
	size_t build_id_len;     /*   the index cache's key), 0: none */
	struct sp_sym *syms;     /* sorted by value, then name; duplicates (aliases) kept */
	size_t n_syms;
	/* .eh_frame's function extents, sorted, disjoint, each inside an
	 * executable segment (a stripped file keeps them: where functions
	 * without a symbol start and end) */
	struct sp_extent *ext;
	size_t n_ext;
	struct sp_segment *segs; /* PT_LOAD segments */
	size_t n_segs;
	void *priv;              /* string storage */
};

/* Open PATH and read its function symbols.  0, or -errno with a message in
 * ERR ("not an ELF file", "no symbol table", …). */
int sp_elf_open(const char *path, struct sp_elf **out, char *err, size_t errlen);
void sp_elf_close(struct sp_elf *e);

/* Symbols whose name matches the fnmatch(3) GLOB (a GLOB that is a
 * symbol's own name matches that name alone), each address once (the
 * first name in sort order for aliases, preferring a global .dynsym name).
 * *OUT is a malloc'ed array of pointers into E; returns the count or -errno. */
long sp_elf_match(const struct sp_elf *e, const char *glob, const struct sp_sym ***out);

/* The symbol with exactly NAME (preferring a global one), or NULL. */
const struct sp_sym *sp_elf_lookup(const struct sp_elf *e, const char *name);

/* The function symbol whose [value, value+size) holds VADDR (size 0: only
 * VADDR == value), or NULL. */
const struct sp_sym *sp_elf_containing(const struct sp_elf *e, uint64_t vaddr);
/* The index in E->syms (sorted by value) of the first symbol whose value is
 * above VADDR (E->n_syms when none is). */
size_t sp_elf_upper(const struct sp_elf *e, uint64_t vaddr);

/* The first symbol whose value is above VADDR, or NULL: where the code
 * holding VADDR ends at the latest. */
const struct sp_sym *sp_elf_next_after(const struct sp_elf *e, uint64_t vaddr);

/* The .eh_frame extent holding VADDR: true with *LO, *HI. */
bool sp_elf_extent(const struct sp_elf *e, uint64_t vaddr, uint64_t *lo, uint64_t *hi);
/* The size of the .eh_frame extent starting exactly at START, 0 when none
 * does: a function's extent when its symbol has no size (assembly without
 * .size, a stripped IFUNC implementation). */
uint64_t sp_elf_fde_size(const struct sp_elf *e, uint64_t start);
/* The function holding VADDR: the symbol with a size covering it (as
 * sp_elf_containing), else the .eh_frame extent holding it.  true with
 * *START and *SIZE. */
bool sp_elf_func_extent(const struct sp_elf *e, uint64_t vaddr, uint64_t *start, uint64_t *size);
/* The index in E->ext of the first extent starting above VADDR. */
size_t sp_elf_ext_upper(const struct sp_elf *e, uint64_t vaddr);

/* The first address above VADDR where a function starts (a symbol, or an
 * .eh_frame extent: stripped objects' local functions), 0 when none does:
 * the code holding VADDR ends there at the latest. */
uint64_t sp_elf_next_start(const struct sp_elf *e, uint64_t vaddr);

/* Does any function hold a byte of [LO, HI) or start in it (a symbol with
 * its size, or an .eh_frame extent)? */
bool sp_elf_covers(const struct sp_elf *e, uint64_t lo, uint64_t hi);

/* ELF virtual address → file offset (for kernel uprobes), via PT_LOAD.
 * 0 or -ENOENT. */
int sp_elf_vaddr_to_offset(const struct sp_elf *e, uint64_t vaddr, uint64_t *off);

/* Is VADDR inside an executable PT_LOAD segment? */
bool sp_elf_vaddr_is_text(const struct sp_elf *e, uint64_t vaddr);

/* Added for tests (test hook, not for production use): look for build-id
 * debug files under DIR/.build-id/ instead of /usr/lib/debug/.build-id/;
 * NULL restores the default.  Not thread-safe.  Deliberately not an
 * environment variable: a preloaded library must not let the environment
 * choose files it reads (AT_SECURE). */
void sp_elf_set_debug_root(const char *dir);

/* Any symbol, data included, named NAME in the file at PATH (.symtab, else
 * .dynsym).  0 and its ELF value, or -ENOENT.  Opens the file: not for hot
 * paths. */
int sp_elf_find_any_symbol(const char *path, const char *name, uint64_t *value);

/* A flat copy of E in one malloc'ed buffer (*LEN bytes) for the start-up
 * cache (symcache.h), or NULL. */
void *sp_elf_flatten(const struct sp_elf *e, size_t *len);
/* E again from a flat copy, named PATH.  The bytes are untrusted: every
 * count, offset, string and the sort order are checked; 0, or -EINVAL with
 * what is wrong in WHY (-ENOMEM). */
int sp_elf_unflatten(const void *data, size_t len, const char *path, struct sp_elf **out,
		     char *why, size_t whylen);
/* The build-id debug file E would read its symbols from (whether or not it
 * exists) into BUF; its length, 0 when E has no build ID. */
size_t sp_elf_debug_candidate(const struct sp_elf *e, char *buf, size_t len);
/* Where build-id debug files are looked for (sp_elf_set_debug_root). */
const char *sp_elf_debug_root(void);

#endif
