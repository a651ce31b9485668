/* plugin — see plugin.h. */
#include "plugin.h"
#include "heap.h"
#include "log.h"
#include "probe.h"
#include "registry.h"
#include "tstate.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

struct plugin {
	char *path;
	void *handle;
	void (*fini)(void);
	struct plugin *next;
};

static struct plugin *plugins;      /* registry lock held */
static char **deferred;             /* item texts waiting for the entry point */
static size_t n_deferred;
static bool entry_hooked;
static int (*attach_deferred)(const char *spec);   /* resolve.h's, given to sp_plugin_defer */

bool sp_plugin_can_load(void)
{
	/* environ is set by libc's initialisation, which we run before */
	return environ != NULL;
}

static struct plugin *load(const char *path, char *err, size_t errlen)
{
	for (struct plugin *p = plugins; p; p = p->next)
		if (strcmp(p->path, path) == 0)
			return p;
	if (access(path, F_OK) != 0) {
		snprintf(err, errlen, "plugin '%s': %s", path, strerror(errno));
		return NULL;
	}
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();
		snprintf(err, errlen, "plugin '%s' cannot be loaded: %s", path, e ? e : "dlopen failed");
		return NULL;
	}
	const int *abi = dlsym(h, "selfprobe_plugin_abi");
	if (!abi) {
		snprintf(err, errlen, "'%s' is not a libselfprobe plugin: it lacks SELFPROBE_PLUGIN "
			 "(the symbol selfprobe_plugin_abi)", path);
		dlclose(h);
		return NULL;
	}
	if (*abi != SELFPROBE_ABI_VERSION) {
		snprintf(err, errlen, "plugin '%s' was built for ABI version %d; this libselfprobe has %d: "
			 "rebuild it against this selfprobe.h", path, *abi, SELFPROBE_ABI_VERSION);
		dlclose(h);
		return NULL;
	}
	int (*init)(const char *) = (int (*)(const char *))dlsym(h, "selfprobe_plugin_init");
	if (init) {
		const char *args = getauxval(AT_SECURE) ? NULL : getenv("UPROBE_PLUGIN_ARGS");
		int rc = init(args);
		if (rc != 0) {
			snprintf(err, errlen, "plugin '%s': selfprobe_plugin_init failed (%d)", path, rc);
			dlclose(h);
			return NULL;
		}
	}
	struct plugin *p = sp_calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->path = sp_strdup(path);
	p->handle = h;
	p->fini = (void (*)(void))dlsym(h, "selfprobe_plugin_fini");
	p->next = plugins;
	plugins = p;
	return p;
}

int sp_plugin_handler(const struct sp_spec_item *item, selfprobe_handler_fn *fn, char *err, size_t errlen)
{
	struct plugin *p = load(item->plugin_path, err, errlen);
	if (!p)
		return -ENOENT;
	*fn = (selfprobe_handler_fn)dlsym(p->handle, item->plugin_fn);
	if (!*fn) {
		snprintf(err, errlen, "plugin '%s' has no function '%s'", item->plugin_path, item->plugin_fn);
		return -ENOENT;
	}
	return 0;
}

/* At the program's entry point: attach what waited for it. */
static int on_entry(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	if (!n_deferred)
		return 0;
	/* everything here is the runtime's own work, not the application's */
	sp_tls.runtime++;
	char **items = deferred;
	size_t n = n_deferred;
	deferred = NULL;
	n_deferred = 0;
	for (size_t i = 0; i < n; i++) {
		attach_deferred(items[i]);
		sp_free(items[i]);
	}
	sp_free(items);
	sp_tls.runtime--;
	return 0;
}

static int hook_entry(void)
{
	if (entry_hooked)
		return 0;
	int rc = sp_probe_attach_internal("selfprobe:program-entry", (uintptr_t)getauxval(AT_ENTRY), true,
					  on_entry, NULL);
	entry_hooked = rc == 0;
	return rc;
}

int sp_plugin_defer(const struct sp_spec_item *item, int (*attach)(const char *spec))
{
	attach_deferred = attach;
	int rc = hook_entry();
	if (rc)
		return rc;
	char **n = sp_realloc(deferred, (n_deferred + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	deferred = n;
	deferred[n_deferred] = sp_strdup(item->text);
	if (!deferred[n_deferred])
		return -ENOMEM;
	n_deferred++;
	return 0;
}

void sp_plugin_fini_all(void)
{
	for (struct plugin *p = plugins; p; p = p->next)
		if (p->fini)
			p->fini();
}
