/* symcache — an object's function symbols through the start-up cache.
 *
 * Reading libc's symbols (its .dynsym, its build-id debug file's .symtab,
 * the merge and the sort) was the largest single cost of a process's
 * attach once the branch-target index was cached: ~15 % of /bin/true with
 * one libc probe, paid again by every exec'ed child.  The result of
 * sp_elf_open is a function of two files only, so it is kept on disk
 * (objcache.h, kind "elfsym") keyed by the object's path and its identity
 * as stat(2) gives it: device, inode, size, mtime and ctime to the
 * nanosecond (a file replaced, rewritten in place or touched has a new
 * key), plus the debug root.  The debug file is named by the object's build
 * ID, which the entry holds: its stat (or its absence) is stored too and
 * compared on every load, so installing, removing or replacing a debug
 * package makes the entry stale and it is read again.
 *
 * A payload that does not decode (truncated, corrupt, another format) is
 * refused with its reason (objcache.h sp_objcache_reject: a report error
 * when UPROBE_LOG is set) and the symbols are read from the file. */
#ifndef SP_SYMCACHE_H
#define SP_SYMCACHE_H

#include "elfsym.h"

/* sp_elf_open, through the cache when it is on. */
int sp_elf_open_cached(const char *path, struct sp_elf **out, char *err, size_t errlen);

#endif
