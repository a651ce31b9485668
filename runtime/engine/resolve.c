/* resolve — see resolve.h.  Above the registry, the load watcher and the
 * plugins, which call back into it only through what it registers with
 * them (sp_plugin_defer's callback). */
#include "resolve.h"
#include "foreign.h"
#include "loadwatch.h"
#include "log.h"
#include "maps.h"
#include "plugin.h"
#include "registry.h"
#include "tstate.h"

#include <errno.h>
#include <string.h>

long sp_probe_attach_item(const struct sp_spec_item *item, selfprobe_handler_fn fn,
			  void *data, struct selfprobe_link *link)
{
	sp_probe_setup();
	char err[512] = "";
	long rc;
	const char *no = sp_probe_unsupported(item);
	if (no) {
		sp_probe_error(item->text, "%s", no);
		return -ENOTSUP;
	}
	rc = sp_tstate_init();
	if (rc) {
		sp_probe_error(item->text, "cannot set up counters: %s", strerror((int)-rc));
		return rc;
	}
	sp_foreign_init();
	if (!fn && item->action == SP_ACT_PLUGIN) {
		sp_probe_lock();
		if (!sp_plugin_can_load()) {
			/* too early for dlopen: at the program's entry point */
			rc = sp_plugin_defer(item, sp_probe_attach_spec);
			if (rc)
				sp_probe_error(item->text, "cannot wait for the program's entry point to load "
					       "the plugin: %s", strerror((int)-rc));
			sp_probe_unlock();
			return rc;
		}
		rc = sp_plugin_handler(item, &fn, err, sizeof(err));
		sp_probe_unlock();
		if (rc) {
			sp_probe_error(item->text, "%s", err);
			return rc;
		}
	}
	struct sp_object *objs = NULL;
	size_t n_objs = 0;
	rc = sp_maps_snapshot(&objs, &n_objs);
	if (rc) {
		sp_probe_error(item->text, "cannot list loaded objects: %s", strerror((int)-rc));
		return rc;
	}
	sp_probe_lock();
	int idx = sp_maps_find(objs, n_objs, item->object, err, sizeof(err));
	if (idx == -ENOENT && item->object) {
		/* not loaded yet: it attaches when the loader brings it in */
		rc = sp_loadwatch_defer(item, fn, data, link);
		/* not an error in this process: the report at exit (or the
		 * launcher, over every process) names what never attached */
		if (rc == 0)
			sp_info("%s: %s; it attaches if the program loads it later", item->text, err);
		else
			sp_probe_error(item->text, "%s, and it cannot be watched for: %s", err,
				       strerror((int)-rc));
	} else if (idx < 0) {
		sp_probe_error(item->text, "%s", err);
		rc = idx;
	} else {
		rc = sp_probe_attach_object(item, &objs[idx], fn, data, link);
		if (rc == -ESTALE) {
			/* unloaded while it attached (a dlclose in another
			 * thread): pending, as if it had not been loaded */
			rc = sp_loadwatch_defer(item, fn, data, link);
			if (rc == 0)
				sp_info("%s: %s was unloaded while the item attached; it attaches if the program "
					"loads it again", item->text, objs[idx].path);
			else
				sp_probe_error(item->text, "%s was unloaded while the item attached, and it cannot "
					       "be watched for: %s", objs[idx].path, strerror((int)-rc));
		} else if (rc >= 0 && item->object)
			sp_loadwatch_defer_attached(item, fn, data, link, &objs[idx]);
	}
	sp_probe_unlock();
	sp_maps_free(objs, n_objs);
	sp_probe_reclaim();
	return rc;
}

/* Attaches an item of a bpftrace program (bt_run.c's, registered by the
 * API): resolve
 * does not call up into the language's module. */
static long (*attach_program)(const struct sp_spec_item *item);

void sp_resolve_on_program(long (*attach)(const struct sp_spec_item *item))
{
	attach_program = attach;
}

int sp_probe_attach_spec(const char *spec)
{
	if (!spec)
		return -EINVAL;
	struct sp_spec s = { 0 };
	if (sp_spec_load(spec, &s) != 0)
		return -ENOMEM;
	int failed = 0;
	for (size_t i = 0; i < s.n_errors; i++) {
		sp_probe_error(s.errors[i].item, "%s", s.errors[i].message);
		failed = 1;
	}
	for (size_t i = 0; i < s.n_items; i++)
		if ((s.items[i].action == SP_ACT_PROGRAM
			     ? (attach_program ? attach_program(&s.items[i]) : -ENOSYS)
			     : sp_probe_attach_item(&s.items[i], NULL, NULL, NULL)) < 0)
			failed = 1;
	sp_spec_free(&s);
	return failed ? -EINVAL : 0;
}

int sp_probe_detach(struct selfprobe_link *link)
{
	sp_probe_lock();
	sp_loadwatch_drop_link(link);   /* nothing of LINK attaches from now on */
	sp_probe_unlock();
	return sp_probe_detach_link(link);
}
