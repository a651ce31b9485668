/* maps — the objects loaded in this process and their text mappings.
 *
 * A snapshot taken with dl_iterate_phdr: one sp_object per loaded ELF object
 * (the main executable, shared libraries; the vDSO is skipped), with its load
 * bias and executable PT_LOAD ranges.  Matching a spec's object name against
 * the snapshot lives here too.
 */
#ifndef SP_MAPS_H
#define SP_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_MAX_TEXT_RANGES 8

struct sp_range {
	uintptr_t start, end;    /* runtime addresses, [start, end) */
};

struct sp_object {
	char *path;              /* absolute path; the main executable's from /proc/self/exe */
	uintptr_t bias;          /* dlpi_addr: runtime address = ELF vaddr + bias */
	bool is_main;
	struct sp_range text[SP_MAX_TEXT_RANGES];   /* PF_X PT_LOAD segments */
	int n_text;
};

/* Snapshot the loaded objects.  0 or -errno. */
int sp_maps_snapshot(struct sp_object **objs, size_t *n);
void sp_maps_free(struct sp_object *objs, size_t n);

/* Find the object NAME designates (NULL: the main executable):
 *   - a path (contains '/'): the object whose realpath equals NAME's realpath;
 *   - else a library name, matched against basenames: exact, then NAME".so…",
 *     then NAME"-…", then a unique plain prefix ("libc" → libc.so.6).
 * Returns the index, or -ENOENT (not loaded) / -EINVAL (ambiguous) with a
 * message in ERR. */
int sp_maps_find(const struct sp_object *objs, size_t n, const char *name,
		 char *err, size_t errlen);

/* Does the file PATH answer to the library NAME at RANK?  Basename ranks,
 * best first: 0 "libc.so.6" exactly, 1 "libc" → "libc.so…", 2 "libfoo" →
 * "libfoo-1.2.so", 3 any prefix.  The first rank with one match decides
 * (sp_maps_find, and the CLI's search of files on disk). */
#define SP_MAPS_RANKS 4
bool sp_maps_name_rank(const char *path, const char *name, int rank);

/* Is [addr, addr+len) inside one of OBJ's text ranges? */
bool sp_maps_in_text(const struct sp_object *obj, uintptr_t addr, size_t len);

/* Bytes readable at ADDR inside OBJ's text, up to the end of its range (a
 * decode must not run off the mapping); 0 outside the text. */
size_t sp_maps_text_avail(const struct sp_object *obj, uintptr_t addr);

/* PATH's last component (the object's name in messages). */
const char *sp_maps_base_name(const char *path);

#endif
