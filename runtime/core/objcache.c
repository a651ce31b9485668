/* objcache — see objcache.h. */
#include "objcache.h"
#include "log.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAGIC "SPCACHE2"    /* 2: the four-lane Fletcher payload checksum */
#define FORMAT 2u
#define MAX_PAYLOAD ((size_t)256 << 20)

struct header {
	char magic[8];
	char kind[16];
	uint64_t key[2];
	uint64_t len;            /* payload bytes */
	uint64_t sum;            /* hash of the payload */
};

static int state;                /* 0 unknown, 1 on, -1 off */
static char dir[PATH_MAX];
static uint64_t runtime_id[2];   /* this build of the runtime */

/* ---- hashing: two independent 64-bit lanes over 8-byte words ---- */

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static void mix(struct sp_objcache_hasher *hs, uint64_t w)
{
	hs->a = (hs->a ^ w) * 0x9e3779b97f4a7c15ull;
	hs->a ^= hs->a >> 29;
	hs->b = rotl(hs->b + w * 0xc2b2ae3d27d4eb4full, 31) * 0x165667b19e3779f9ull;
	hs->n++;
}

void sp_objcache_begin(struct sp_objcache_hasher *hs, const char *kind)
{
	hs->a = 0x243f6a8885a308d3ull;
	hs->b = 0x13198a2e03707344ull;
	hs->n = 0;
	sp_objcache_enabled();   /* knows this runtime's build from here on */
	mix(hs, FORMAT);
	mix(hs, runtime_id[0]);
	mix(hs, runtime_id[1]);
	sp_objcache_feed(hs, kind, strlen(kind));
}

void sp_objcache_feed(struct sp_objcache_hasher *hs, const void *data, size_t len)
{
	const unsigned char *p = data;
	mix(hs, len);            /* lengths too: "ab"+"c" is not "a"+"bc" */
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		mix(hs, w);
	}
	uint64_t w = 0;
	memcpy(&w, p, len);
	mix(hs, w);
}

void sp_objcache_done(struct sp_objcache_hasher *hs, struct sp_objcache_key *key)
{
	mix(hs, hs->n);
	key->h[0] = hs->a ^ rotl(hs->b, 17);
	key->h[1] = hs->b ^ rotl(hs->a, 41);
}

void sp_objcache_derive(const char *kind, const struct sp_objcache_key *objkey, struct sp_objcache_key *key)
{
	struct sp_objcache_hasher hs;
	sp_objcache_begin(&hs, kind);
	sp_objcache_feed(&hs, objkey, sizeof(*objkey));
	sp_objcache_done(&hs, key);
}

/* The payload's checksum: a Fletcher-style sum of 64-bit words in four
 * independent lanes (a += w; b += a: a flipped bit changes a, a moved
 * word changes b), finished through the key's hash.  The key's own hash,
 * two multiplies per word, cost an exec'ed child ~0.3 ms over its ~800 KiB
 * of entries; this is additions only.  Length is checked separately. */
static uint64_t payload_sum(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t a[4] = { 1, 2, 3, 4 }, b[4] = { 0, 0, 0, 0 };
	size_t n = len;
	for (; n >= 32; p += 32, n -= 32)
		for (int i = 0; i < 4; i++) {
			uint64_t w;
			memcpy(&w, p + 8 * i, 8);
			a[i] += w;
			b[i] += a[i];
		}
	struct sp_objcache_hasher hs = { 0x452821e638d01377ull, 0xbe5466cf34e90c6cull, 0 };
	for (int i = 0; i < 4; i++) {
		mix(&hs, a[i]);
		mix(&hs, b[i]);
	}
	sp_objcache_feed(&hs, p, n);   /* the tail, and its length */
	mix(&hs, len);
	struct sp_objcache_key k;
	sp_objcache_done(&hs, &k);
	return k.h[0];
}

/* ---- where, and whether ---- */

/* Ours and writable by nobody else (a cache another user can write would
 * let them choose how we patch code). */
static int trusted(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static int make_dir(const char *path)
{
	/* the parents (~/.cache) as the user's umask has them; ours 0700 */
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *s = buf + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(buf, 0700);
			*s = '/';
		}
	mkdir(buf, 0700);
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && trusted(&st) ? 0 : -1;
}

static void identify_runtime(void)
{
	/* the runtime's own file: a rebuilt runtime keys its results anew.
	 * Linked into a program (the CLI, the tests), the main program's
	 * name is argv[0] (maybe found through PATH): its file is
	 * /proc/self/exe. */
	Dl_info info;
	struct link_map *lm = NULL;
	struct stat st;
	const char *file = NULL;
	if (dladdr1((void *)identify_runtime, &info, (void **)&lm, RTLD_DL_LINKMAP) && lm)
		file = lm->l_name && lm->l_name[0] ? lm->l_name : "/proc/self/exe";
	if (file && stat(file, &st) == 0) {
		runtime_id[0] = (uint64_t)st.st_dev * 0x100000001b3ull ^ (uint64_t)st.st_ino;
		runtime_id[1] = (uint64_t)st.st_size ^ ((uint64_t)st.st_mtim.tv_sec << 20) ^
				(uint64_t)st.st_mtim.tv_nsec;
	} else
		state = -1;      /* unknown build: results of another could be taken for ours */
}

/* NAME from the environment.  The preload attaches in the first
 * constructor, before libc has set environ: then from the process's
 * initial environment, as the kernel keeps it. */
static const char *env_get(const char *name)
{
	extern char **environ;
	if (environ)
		return getenv(name);
	static char buf[65536];
	static ssize_t len = -1;
	if (len < 0) {
		int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
		len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
		len = len < 0 ? 0 : len;
		buf[len] = '\0';
		if (fd >= 0)
			close(fd);
	}
	size_t n = strlen(name);
	for (char *e = buf; e < buf + len; e += strlen(e) + 1)
		if (strncmp(e, name, n) == 0 && e[n] == '=')
			return e + n + 1;
	return NULL;
}

int sp_objcache_enabled(void)
{
	if (state)
		return state > 0;
	state = -1;
	if (getauxval(AT_SECURE))
		return 0;
	const char *env = env_get("UPROBE_CACHE");
	const char *xdg = env_get("XDG_CACHE_HOME"), *home = env_get("HOME");
	if (env && strcmp(env, "off") == 0)
		return 0;
	int n;
	if (env && *env)
		n = snprintf(dir, sizeof(dir), "%s", env);
	else if (xdg && *xdg == '/')
		n = snprintf(dir, sizeof(dir), "%s/selfprobe", xdg);
	else if (home && *home == '/')
		n = snprintf(dir, sizeof(dir), "%s/.cache/selfprobe", home);
	else
		return 0;
	if (n <= 0 || (size_t)n >= sizeof(dir) - 64)
		return 0;
	if (make_dir(dir) != 0) {
		sp_debug("cache: %s is not a directory of this user's that only it can write: not used", dir);
		return 0;
	}
	state = 1;
	identify_runtime();
	return state > 0;
}

static int entry_path(char *buf, size_t len, const char *kind, const struct sp_objcache_key *key)
{
	int n = snprintf(buf, len, "%s/%s-%016llx%016llx", dir, kind, (unsigned long long)key->h[0],
			 (unsigned long long)key->h[1]);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

static int read_all(int fd, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t r = read(fd, (char *)buf + got, len - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* An entry refused: a user who asked for messages (UPROBE_LOG) finds the
 * reason in the report's errors; otherwise a debug line only (a stale or
 * broken cache costs time, never behaviour). */
static void rejected(const char *path, const char *why)
{
	sp_debug("cache: %s: %s: ignored", path, why);
	if (sp_log_asked)
		sp_report_error("cache", "%s: %s: ignored, rebuilt", path, why);
}

void sp_objcache_reject(const char *kind, const struct sp_objcache_key *key, const char *why)
{
	char path[PATH_MAX];
	if (entry_path(path, sizeof(path), kind, key) == 0)
		rejected(path, why);
}

/* The entry is mapped, not read: read() into fresh memory cost a page
 * fault (and a zeroed page) per 4 KiB, ~200 of them per exec'ed child for
 * libc's three entries, more than anything else its attach did; a
 * populated read-only mapping of the page cache costs one system call.
 * Writers never change a file in place (they rename a new one over it),
 * so the mapping holds what was checked; it lives only until the caller
 * has decoded it (sp_objcache_release). */
void *sp_objcache_load_checked(const char *kind, const struct sp_objcache_key *key, size_t *len,
			       const char *(*check)(const void *data, size_t len))
{
	void *data = sp_objcache_load(kind, key, len);
	if (!data)
		return NULL;
	const char *why = check(data, *len);
	if (why) {
		sp_objcache_reject(kind, key, why);
		sp_objcache_release(data, *len);
		return NULL;
	}
	return data;
}

void *sp_objcache_load(const char *kind, const struct sp_objcache_key *key, size_t *len)
{
	if (!sp_objcache_enabled())
		return NULL;
	char path[PATH_MAX];
	if (entry_path(path, sizeof(path), kind, key) != 0)
		return NULL;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	uint8_t *map = MAP_FAILED;
	const char *bad = NULL;
	struct stat st;
	struct header h;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !trusted(&st))
		bad = "not a regular file of this user's that only it can write";
	else if ((size_t)st.st_size < sizeof(h) || read_all(fd, &h, sizeof(h)) != 0)
		bad = "truncated";
	else if (memcmp(h.magic, MAGIC, 8) != 0 || strncmp(h.kind, kind, sizeof(h.kind)) != 0 ||
		 h.key[0] != key->h[0] || h.key[1] != key->h[1])
		bad = "another format or key";
	else if (h.len > MAX_PAYLOAD || h.len != (uint64_t)st.st_size - sizeof(h))
		bad = "wrong length";
	else if ((map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0)) == MAP_FAILED)
		bad = "unreadable";
	else if (payload_sum(map + sizeof(h), h.len) != h.sum)
		bad = "checksum mismatch";
	close(fd);
	if (bad) {
		rejected(path, bad);
		if (map != MAP_FAILED)
			munmap(map, (size_t)st.st_size);
		return NULL;
	}
	sp_debug("cache: %s: used", path);
	*len = h.len;
	return map + sizeof(h);
}

void sp_objcache_release(void *data, size_t len)
{
	if (data)
		munmap((uint8_t *)data - sizeof(struct header), len + sizeof(struct header));
}

void sp_objcache_store(const char *kind, const struct sp_objcache_key *key, const void *data, size_t len)
{
	if (!sp_objcache_enabled() || len > MAX_PAYLOAD)
		return;
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	if (entry_path(path, sizeof(path), kind, key) != 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.%d.%ld.tmp", path, (int)getpid(), (long)syscall(SYS_gettid));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		sp_debug("cache: cannot create %s: %s", tmp, strerror(errno));
		return;
	}
	struct header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, MAGIC, 8);
	strncpy(h.kind, kind, sizeof(h.kind) - 1);
	h.key[0] = key->h[0];
	h.key[1] = key->h[1];
	h.len = len;
	h.sum = payload_sum(data, len);
	int ok = write(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) && write(fd, data, len) == (ssize_t)len;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		sp_debug("cache: cannot write %s", path);
		unlink(tmp);
		return;
	}
	sp_debug("cache: %s: written", path);
}
