/* objdata — an ELF file's loaded bytes and relocation targets, read with
 * libelf: what the index (btindex.c) needs beyond the code to know which
 * addresses a program holds (so an indirect jump could reach them) and to
 * read a jump table's entries.  Both the live runtime and the CLI read the
 * same file, so they get the same answers.  The file is untrusted input:
 * every offset and size is checked.
 */
#ifndef SP_OBJDATA_H
#define SP_OBJDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elfsym.h"

struct sp_objdata;

/* Read PATH's PT_LOAD segments (ELF's, from E).  NULL on failure, and for
 * a file whose segments overlap (malformed: which bytes load is unclear). */
struct sp_objdata *sp_objdata_open(const char *path, const struct sp_elf *e);
void sp_objdata_close(struct sp_objdata *d);

/* N bytes at ELF address VADDR as the file loads them (zero past p_filesz,
 * before relocation).  false when [VADDR, VADDR+N) is not all loaded. */
bool sp_objdata_read(const struct sp_objdata *d, uint64_t vaddr, size_t n, void *out);

/* Does the file load read-only data apart from its code (a PT_LOAD that
 * is neither executable nor writable, as ld's -z separate-code makes)? */
bool sp_objdata_separate_rodata(const struct sp_objdata *d);

/* Is VADDR in a loaded, non-executable segment?  (Where tables live.) */
bool sp_objdata_is_data(const struct sp_objdata *d, uint64_t vaddr);

/* Every address a relocation of the file stores (ELF addresses):
 * R_X86_64_RELATIVE / IRELATIVE addends, R_X86_64_64 / GLOB_DAT / JUMP_SLOT
 * targets defined in the file, DT_RELR words.  FN gets each with a static
 * phrase naming its kind.  0, or -1 when the relocations cannot be read. */
int sp_objdata_relocs(const struct sp_objdata *d,
		      void (*fn)(void *ctx, uint64_t vaddr, const char *how), void *ctx);

/* Each 8-byte-aligned word of the non-executable segments (for non-PIE
 * objects, where a pointer in data has no relocation). */
void sp_objdata_words(const struct sp_objdata *d,
		      void (*fn)(void *ctx, uint64_t vaddr, uint64_t value), void *ctx);

#endif
