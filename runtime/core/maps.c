/* maps — the objects loaded in this process and their text mappings.
 *
 * dl_iterate_phdr reports every object the dynamic loader knows, in load
 * order: the main executable first (with an empty name), then the vDSO
 * ("linux-vdso.so.1", or an empty name on some loaders) and the libraries.
 * The loader lock is held during the walk, so the snapshot is consistent;
 * it is a copy, and goes stale on the next dlopen/dlclose.
 */
#include "maps.h"
#include "heap.h"

#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

/* The most basenames an "is not loaded" message lists before "…". */
#define MAX_LISTED 8

struct walk {
	struct sp_object *objs;
	size_t n, cap;
	int err;
	int index;               /* of the callback invocation */
};

static char *main_exe_path(void)
{
	char buf[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", buf, sizeof(buf) - 1);

	if (len <= 0)
		return sp_strdup("/proc/self/exe");
	buf[len] = '\0';
	return sp_strdup(buf);
}

static char *object_path(const char *name)
{
	char buf[PATH_MAX];

	/* realpath resolves symlinks (libc.so.6 → libc-2.x.so on some
	 * systems) so a path in a spec and the loaded object compare equal. */
	if (realpath(name, buf))
		return sp_strdup(buf);
	return sp_strdup(name);
}

/* Each object's path as resolved, kept from one snapshot to the next: a
 * realpath reads every component of the path (five readlinks for
 * /lib/x86_64-linux-gnu/libc.so.6) and a process takes a snapshot for the
 * exit hook, the loader's watch and each spec item: 96 readlinks in a
 * `/bin/true` with one probe, ~7 % of its time.  An entry stands for the
 * object loaded under that name at that bias; when the loader's count of
 * unloads (dlpi_subs) moves, every entry is dropped (a name may come back
 * from another file).  Used only in the walk's callback, which runs under
 * the loader's lock. */
struct known {
	char *name, *path;
	uintptr_t bias;
};
static struct known *known;
static size_t n_known, cap_known;
static unsigned long long known_subs;

static void known_drop(void)
{
	for (size_t i = 0; i < n_known; i++) {
		sp_free(known[i].name);
		sp_free(known[i].path);
	}
	n_known = 0;
}

static const char *known_path(const char *name, uintptr_t bias)
{
	for (size_t i = 0; i < n_known; i++)
		if (known[i].bias == bias && strcmp(known[i].name, name) == 0)
			return known[i].path;
	return NULL;
}

static void known_add(const char *name, uintptr_t bias, const char *path)
{
	if (n_known == cap_known) {
		size_t cap = cap_known ? cap_known * 2 : 16;
		struct known *k = sp_realloc(known, cap * sizeof(*k));
		if (!k)
			return;
		known = k;
		cap_known = cap;
	}
	struct known k = { sp_strdup(name), sp_strdup(path), bias };
	if (!k.name || !k.path) {
		sp_free(k.name);
		sp_free(k.path);
		return;
	}
	known[n_known++] = k;
}

/* The object's path (malloc'ed), resolved once per loaded object. */
static char *path_of(const struct dl_phdr_info *info, size_t size, bool is_main)
{
	bool memo = size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs);
	if (memo && info->dlpi_subs != known_subs) {
		known_drop();
		known_subs = info->dlpi_subs;
	}
	const char *had = memo ? known_path(info->dlpi_name, info->dlpi_addr) : NULL;
	if (had)
		return sp_strdup(had);
	char *path = is_main ? main_exe_path() : object_path(info->dlpi_name);
	if (path && memo)
		known_add(info->dlpi_name, info->dlpi_addr, path);
	return path;
}

static bool is_vdso(const struct dl_phdr_info *info, int index)
{
	uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);

	if (index > 0 && info->dlpi_name[0] == '\0')
		return true;
	if (strncmp(info->dlpi_name, "linux-vdso", 10) == 0 ||
	    strncmp(info->dlpi_name, "linux-gate", 10) == 0)
		return true;
	/* The vDSO's ELF header is mapped at AT_SYSINFO_EHDR. */
	for (int i = 0; vdso && i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && ph->p_offset == 0 &&
		    info->dlpi_addr + ph->p_vaddr == vdso)
			return true;
	}
	return false;
}

static void collect_text(struct sp_object *o, const struct dl_phdr_info *info)
{
	for (int i = 0; i < info->dlpi_phnum && o->n_text < SP_MAX_TEXT_RANGES; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || ph->p_memsz == 0)
			continue;
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		o->text[o->n_text].start = start;
		o->text[o->n_text].end = start + ph->p_memsz;
		o->n_text++;
	}
}

static int walk_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct walk *w = data;
	int index = w->index++;

	if (is_vdso(info, index))
		return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct sp_object *objs = sp_realloc(w->objs, cap * sizeof(*objs));
		if (!objs) {
			w->err = -ENOMEM;
			return 1;
		}
		w->objs = objs;
		w->cap = cap;
	}
	struct sp_object *o = &w->objs[w->n];
	memset(o, 0, sizeof(*o));
	o->is_main = index == 0 && info->dlpi_name[0] == '\0';
	o->path = path_of(info, size, o->is_main);
	if (!o->path) {
		w->err = -ENOMEM;
		return 1;
	}
	o->bias = info->dlpi_addr;
	collect_text(o, info);
	w->n++;
	return 0;
}

int sp_maps_snapshot(struct sp_object **objs, size_t *n)
{
	struct walk w = { 0 };

	dl_iterate_phdr(walk_cb, &w);
	if (w.err) {
		sp_maps_free(w.objs, w.n);
		return w.err;
	}
	*objs = w.objs;
	*n = w.n;
	return 0;
}

void sp_maps_free(struct sp_object *objs, size_t n)
{
	for (size_t i = 0; objs && i < n; i++)
		sp_free(objs[i].path);
	sp_free(objs);
}

const char *sp_maps_base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static bool starts_with(const char *s, const char *prefix, const char *suffix)
{
	size_t plen = strlen(prefix);

	if (strncmp(s, prefix, plen) != 0)
		return false;
	return strncmp(s + plen, suffix, strlen(suffix)) == 0;
}

bool sp_maps_name_rank(const char *path, const char *name, int rank)
{
	const char *base = sp_maps_base_name(path);
	switch (rank) {
	case 0: return strcmp(base, name) == 0;
	case 1: return starts_with(base, name, ".so");
	case 2: return starts_with(base, name, "-");
	default: return starts_with(base, name, "");
	}
}

static void list_objects(const struct sp_object *objs, size_t n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		if (i == MAX_LISTED) {
			snprintf(buf + used, len - used, ", …");
			return;
		}
		int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
				 sp_maps_base_name(objs[i].path));
		if (w < 0)
			return;
		used += (size_t)w;
	}
}

static int not_loaded(const struct sp_object *objs, size_t n, const char *name,
		      char *err, size_t errlen)
{
	char list[512];

	list_objects(objs, n, list, sizeof(list));
	snprintf(err, errlen, "'%s' is not loaded (loaded objects: %s)", name, list);
	return -ENOENT;
}

static int find_path(const struct sp_object *objs, size_t n, const char *name,
		     char *err, size_t errlen)
{
	char real[PATH_MAX];
	bool resolved = realpath(name, real) != NULL;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(objs[i].path, name) == 0 ||
		    (resolved && strcmp(objs[i].path, real) == 0))
			return (int)i;
	}
	return not_loaded(objs, n, name, err, errlen);
}

static int find_name(const struct sp_object *objs, size_t n, const char *name,
		     char *err, size_t errlen)
{
	for (int rank = 0; rank < SP_MAPS_RANKS; rank++) {
		int found = -1;
		size_t count = 0;
		for (size_t i = 0; i < n; i++) {
			if (!sp_maps_name_rank(objs[i].path, name, rank))
				continue;
			/* The same file twice (dlmopen namespaces) is not a choice
			 * the user can make by name: take the first. */
			if (found >= 0 && strcmp(objs[found].path, objs[i].path) == 0)
				continue;
			if (found < 0)
				found = (int)i;
			count++;
		}
		if (count == 1)
			return found;
		if (count > 1) {
			size_t used = (size_t)snprintf(err, errlen, "'%s' is ambiguous:", name);
			const char *sep = " ";
			for (size_t i = 0; i < n && used < errlen; i++) {
				if (!sp_maps_name_rank(objs[i].path, name, rank))
					continue;
				used += (size_t)snprintf(err + used, errlen - used, "%s%s",
							 sep, sp_maps_base_name(objs[i].path));
				sep = ", ";
			}
			return -EINVAL;
		}
	}
	return not_loaded(objs, n, name, err, errlen);
}

int sp_maps_find(const struct sp_object *objs, size_t n, const char *name,
		 char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	if (!name) {
		for (size_t i = 0; i < n; i++)
			if (objs[i].is_main)
				return (int)i;
		snprintf(err, errlen, "the main executable is not in the object list");
		return -ENOENT;
	}
	if (name[0] == '\0') {
		snprintf(err, errlen, "empty object name");
		return -EINVAL;
	}
	if (strchr(name, '/'))
		return find_path(objs, n, name, err, errlen);
	return find_name(objs, n, name, err, errlen);
}

bool sp_maps_in_text(const struct sp_object *obj, uintptr_t addr, size_t len)
{
	if (addr + len < addr)
		return false;
	for (int i = 0; i < obj->n_text; i++) {
		const struct sp_range *r = &obj->text[i];
		if (addr >= r->start && addr + len <= r->end)
			return true;
	}
	return false;
}

size_t sp_maps_text_avail(const struct sp_object *obj, uintptr_t addr)
{
	for (int i = 0; i < obj->n_text; i++)
		if (addr >= obj->text[i].start && addr < obj->text[i].end)
			return obj->text[i].end - addr;
	return 0;
}
