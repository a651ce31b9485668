/* objcache — results computed from an object's code, kept on disk so that
 * the next process (an exec'ed child, the next run) does not compute them
 * again.  The jmp path's branch-target index of libc takes ~80 ms of CPU to
 * build (a decode of its whole text) and is the same in every process.
 *
 * Content-addressed: the key is a 128-bit hash of everything the result is
 * a function of — the code (named by the GNU build ID in the object's
 * mapped notes, or else its bytes as mapped: a file replaced on disk after
 * it was mapped cannot mislead), its layout, the symbol starts, and the
 * identity of this runtime build (a rebuilt runtime may compute
 * differently).  No path, inode or mtime is trusted.
 *
 * Never trusted blindly: an entry is used only from a directory and a file
 * owned by this user and writable by no one else, a regular file (no
 * symlink followed), with the expected magic, kind, key, length and a
 * checksum of its payload; anything else is ignored (and replaced).
 * Entries are written to a temporary file and renamed, so concurrent
 * processes (a fork+exec storm) see whole entries or none.
 *
 * Where: UPROBE_CACHE=DIR, else $XDG_CACHE_HOME/selfprobe, else
 * $HOME/.cache/selfprobe; UPROBE_CACHE=off disables it.  Off under secure
 * execution (AT_SECURE).
 */
#ifndef SP_OBJCACHE_H
#define SP_OBJCACHE_H

#include <stddef.h>
#include <stdint.h>

struct sp_objcache_key {
	uint64_t h[2];
};

/* A running hash for a key: start, feed, done. */
struct sp_objcache_hasher {
	uint64_t a, b, n;
};
void sp_objcache_begin(struct sp_objcache_hasher *hs, const char *kind);
void sp_objcache_feed(struct sp_objcache_hasher *hs, const void *data, size_t len);
void sp_objcache_done(struct sp_objcache_hasher *hs, struct sp_objcache_key *key);

/* The key of KIND's entry for the object keyed OBJKEY: a memo kept per
 * object (scanmemo, sitememo) is named by its kind and the object alone. */
void sp_objcache_derive(const char *kind, const struct sp_objcache_key *objkey, struct sp_objcache_key *key);

/* The payload stored for KIND/KEY (*LEN bytes, read-only, checked against
 * its checksum), or NULL.  Given back with sp_objcache_release once
 * decoded. */
void *sp_objcache_load(const char *kind, const struct sp_objcache_key *key, size_t *len);
void sp_objcache_release(void *data, size_t len);

/* Store LEN bytes of DATA for KIND/KEY; failures are silent (a debug
 * line): the cache is an optimisation. */
void sp_objcache_store(const char *kind, const struct sp_objcache_key *key, const void *data, size_t len);

/* A payload for KIND/KEY that sp_objcache_load returned but its reader
 * refused (WHY: what is wrong with it): said in the report's errors when
 * messages were asked for (UPROBE_LOG), and at debug level.  The entry is
 * replaced by the next store. */
void sp_objcache_reject(const char *kind, const struct sp_objcache_key *key, const char *why);

/* sp_objcache_load, then CHECK (NULL when the payload will do, else why
 * not): a payload CHECK refuses is rejected (sp_objcache_reject), released
 * and not returned. */
void *sp_objcache_load_checked(const char *kind, const struct sp_objcache_key *key, size_t *len,
			       const char *(*check)(const void *data, size_t len));

/* Is the cache in use here? */
int sp_objcache_enabled(void);

#endif
