/* symcache — see symcache.h. */
#include "symcache.h"
#include "heap.h"
#include "objcache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KIND "elfsym"

/* What a file was, as far as stat tells: enough to see it changed. */
struct stamp {
	uint64_t exists, dev, ino, size, mtime_s, mtime_ns, ctime_s, ctime_ns;
};

static struct stamp stamp_of(const char *path)
{
	struct stamp s = { 0 };
	struct stat st;
	if (stat(path, &st) == 0)
		s = (struct stamp){ 1, (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
				    (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec,
				    (uint64_t)st.st_ctim.tv_sec, (uint64_t)st.st_ctim.tv_nsec };
	return s;
}

static struct stamp debug_stamp(const struct sp_elf *e)
{
	char dpath[4096];
	struct stamp none = { 0 };
	return sp_elf_debug_candidate(e, dpath, sizeof(dpath)) ? stamp_of(dpath) : none;
}

static void key_of(const char *path, const struct stamp *st, struct sp_objcache_key *key)
{
	struct sp_objcache_hasher hs;
	const char *root = sp_elf_debug_root();
	sp_objcache_begin(&hs, KIND);
	sp_objcache_feed(&hs, path, strlen(path));
	sp_objcache_feed(&hs, st, sizeof(*st));
	sp_objcache_feed(&hs, root, strlen(root));
	sp_objcache_done(&hs, key);
}

/* The cached symbols of PATH, or NULL (no entry, stale, or refused). */
static struct sp_elf *load(const char *path, const struct sp_objcache_key *key)
{
	size_t len;
	uint8_t *data = sp_objcache_load(KIND, key, &len);
	if (!data)
		return NULL;
	struct sp_elf *e = NULL;
	char why[256] = "";
	struct stamp dbg, now;
	if (len < sizeof(dbg)) {
		snprintf(why, sizeof(why), "truncated (%zu bytes)", len);
	} else {
		memcpy(&dbg, data, sizeof(dbg));
		if (sp_elf_unflatten(data + sizeof(dbg), len - sizeof(dbg), path, &e, why, sizeof(why)) == 0) {
			now = debug_stamp(e);
			if (memcmp(&now, &dbg, sizeof(now)) != 0) {
				/* not corrupt, only out of date: no complaint */
				sp_elf_close(e);
				e = NULL;
				why[0] = '\0';
			}
		}
	}
	if (!e && why[0])
		sp_objcache_reject(KIND, key, why);
	sp_objcache_release(data, len);
	return e;
}

static void store(const struct sp_elf *e, const struct sp_objcache_key *key)
{
	size_t flen;
	void *flat = sp_elf_flatten(e, &flen);
	struct stamp dbg = debug_stamp(e);
	uint8_t *buf = flat ? sp_malloc(sizeof(dbg) + flen) : NULL;
	if (buf) {
		memcpy(buf, &dbg, sizeof(dbg));
		memcpy(buf + sizeof(dbg), flat, flen);
		sp_objcache_store(KIND, key, buf, sizeof(dbg) + flen);
	}
	sp_free(buf);
	sp_free(flat);
}

int sp_elf_open_cached(const char *path, struct sp_elf **out, char *err, size_t errlen)
{
	if (!sp_objcache_enabled())
		return sp_elf_open(path, out, err, errlen);
	struct stamp st = stamp_of(path);
	if (!st.exists)
		return sp_elf_open(path, out, err, errlen);   /* its own message */
	struct sp_objcache_key key;
	key_of(path, &st, &key);
	if ((*out = load(path, &key)))
		return 0;
	int rc = sp_elf_open(path, out, err, errlen);
	/* a file that changed while it was read would store its new symbols
	 * under its old key: only a file unchanged meanwhile is stored */
	struct stamp after = stamp_of(path);
	if (rc == 0 && memcmp(&after, &st, sizeof(st)) == 0)
		store(*out, &key);
	return rc;
}
