/* objdata — see objdata.h. */
#include "objdata.h"
#include "heap.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SHT_RELR
#define SHT_RELR 19
#endif

struct seg {
	uint64_t vaddr, memsz;
	bool exec, writable;
	uint8_t *bytes;          /* memsz bytes (zero past filesz) */
};

struct sp_objdata {
	char *path;
	struct seg *segs;
	size_t n;
};

void sp_objdata_close(struct sp_objdata *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		sp_free(d->segs[i].bytes);
	sp_free(d->segs);
	sp_free(d->path);
	sp_free(d);
}

struct sp_objdata *sp_objdata_open(const char *path, const struct sp_elf *e)
{
	struct sp_objdata *d = sp_calloc(1, sizeof(*d));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!d || fd < 0 || !(d->path = sp_strdup(path)) || !(d->segs = sp_calloc(e->n_segs + 1, sizeof(*d->segs))))
		goto fail;
	for (size_t i = 0; i < e->n_segs; i++) {
		const struct sp_segment *s = &e->segs[i];
		/* empty, malformed, or wrapping past the top of the address
		 * space (its addresses would alias those near 0) */
		if (s->memsz == 0 || s->filesz > s->memsz || s->memsz > (1ull << 32) ||
		    s->vaddr + s->memsz < s->vaddr)
			continue;
		struct seg *g = &d->segs[d->n];
		g->bytes = sp_calloc(1, s->memsz);
		if (!g->bytes)
			goto fail;
		g->vaddr = s->vaddr;
		g->memsz = s->memsz;
		g->exec = s->flags & 1;   /* PF_X */
		g->writable = s->flags & 2;   /* PF_W */
		d->n++;
		if (s->filesz && pread(fd, g->bytes, s->filesz, (off_t)s->offset) != (ssize_t)s->filesz)
			goto fail;
	}
	/* segments that overlap say two things about one address (which one
	 * the process sees depends on the mapping order): a malformed file,
	 * whose tables and words cannot be trusted */
	for (size_t i = 0; i < d->n; i++)
		for (size_t j = i + 1; j < d->n; j++)
			if (d->segs[i].vaddr < d->segs[j].vaddr + d->segs[j].memsz &&
			    d->segs[j].vaddr < d->segs[i].vaddr + d->segs[i].memsz)
				goto fail;
	close(fd);
	return d;
fail:
	if (fd >= 0)
		close(fd);
	sp_objdata_close(d);
	return NULL;
}

static const struct seg *seg_of(const struct sp_objdata *d, uint64_t vaddr, size_t n)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct seg *g = &d->segs[i];
		if (vaddr >= g->vaddr && vaddr - g->vaddr <= g->memsz && n <= g->memsz - (vaddr - g->vaddr))
			return g;
	}
	return NULL;
}

bool sp_objdata_read(const struct sp_objdata *d, uint64_t vaddr, size_t n, void *out)
{
	const struct seg *g = seg_of(d, vaddr, n);
	if (!g)
		return false;
	memcpy(out, g->bytes + (vaddr - g->vaddr), n);
	return true;
}

bool sp_objdata_separate_rodata(const struct sp_objdata *d)
{
	for (size_t i = 0; i < d->n; i++)
		if (!d->segs[i].exec && !d->segs[i].writable)
			return true;
	return false;
}

bool sp_objdata_is_data(const struct sp_objdata *d, uint64_t vaddr)
{
	const struct seg *g = seg_of(d, vaddr, 1);
	return g && !g->exec;
}

/* DT_RELR: an even word is an address (relocated, then the next word's);
 * an odd word is a bitmap of the 63 words after the last address. */
static void relr(const struct sp_objdata *d, const void *words, size_t n,
		 void (*fn)(void *, uint64_t, const char *), void *ctx)
{
	static const char HOW[] = "relocated pointer (DT_RELR)";
	uint64_t where = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t v, wi;
		/* a section of a mapped file need not be 8-byte aligned */
		memcpy(&wi, (const char *)words + 8 * i, 8);
		if (!(wi & 1)) {
			where = wi;
			if (sp_objdata_read(d, where, 8, &v))
				fn(ctx, v, HOW);
			where += 8;
			continue;
		}
		uint64_t bits = wi >> 1;
		for (int b = 0; b < 63; b++)
			if ((bits >> b) & 1 && sp_objdata_read(d, where + 8 * (uint64_t)b, 8, &v))
				fn(ctx, v, HOW);
		where += 63 * 8;
	}
}

int sp_objdata_relocs(const struct sp_objdata *d,
		      void (*fn)(void *ctx, uint64_t vaddr, const char *how), void *ctx)
{
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -1;
	int fd = open(d->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = -1;
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		goto out;
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh))
			goto out;
		if (sh.sh_type == SHT_RELR) {
			Elf_Data *data = elf_getdata(scn, NULL);
			if (!data || !data->d_buf)
				goto out;
			relr(d, data->d_buf, data->d_size / 8, fn, ctx);
			continue;
		}
		if (sh.sh_type != SHT_RELA || !(sh.sh_flags & SHF_ALLOC))
			continue;   /* the loader's relocations only (.rela.dyn, .rela.plt) */
		Elf_Data *data = elf_getdata(scn, NULL);
		Elf_Scn *symscn = elf_getscn(elf, sh.sh_link);
		Elf_Data *syms = symscn ? elf_getdata(symscn, NULL) : NULL;
		if (!data)
			goto out;
		size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
		for (size_t i = 0; i < n; i++) {
			GElf_Rela r;
			if (!gelf_getrela(data, (int)i, &r))
				goto out;
			uint32_t type = (uint32_t)GELF_R_TYPE(r.r_info), si = (uint32_t)GELF_R_SYM(r.r_info);
			switch (type) {
			case R_X86_64_RELATIVE:
				fn(ctx, (uint64_t)r.r_addend, "relocated pointer (R_X86_64_RELATIVE)");
				break;
			case R_X86_64_IRELATIVE:
				fn(ctx, (uint64_t)r.r_addend, "IFUNC resolver (R_X86_64_IRELATIVE)");
				break;
			case R_X86_64_64:
			case R_X86_64_GLOB_DAT:
			case R_X86_64_JUMP_SLOT: {
				GElf_Sym s;
				if (si && syms && gelf_getsym(syms, (int)si, &s) && s.st_shndx != SHN_UNDEF)
					fn(ctx, s.st_value + (uint64_t)r.r_addend, "relocated pointer (R_X86_64_64)");
				break;
			}
			default:
				break;
			}
		}
	}
	rc = 0;
out:
	if (elf)
		elf_end(elf);
	close(fd);
	return rc;
}

void sp_objdata_words(const struct sp_objdata *d, void (*fn)(void *ctx, uint64_t vaddr, uint64_t value),
		      void *ctx)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct seg *g = &d->segs[i];
		if (g->exec)
			continue;
		for (uint64_t off = (8 - (g->vaddr & 7)) & 7; off + 8 <= g->memsz; off += 8) {
			uint64_t v;
			memcpy(&v, g->bytes + off, 8);
			fn(ctx, g->vaddr + off, v);
		}
	}
}
