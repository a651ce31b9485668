/* loadwatch — see loadwatch.h for the mechanism and why. */
#include "loadwatch.h"
#include "heap.h"
#include "log.h"
#include "maps.h"
#include "probe.h"
#include "registry.h"
#include "stack.h"
#include "tstate.h"

#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

struct watched {
	char *text;                     /* the item as written (re-parsed on use) */
	selfprobe_handler_fn fn;
	void *data;
	struct selfprobe_link *link;
	char *path;                     /* where it is attached now, or NULL */
	uintptr_t bias;
	bool ever;                      /* attached at least once */
	struct watched *next;
};

static struct watched *watch;           /* registry lock held */
static bool hooked;
/* The notification probe's identity, to take it away again when nothing is
 * watched (sp_loadwatch_unhook_idle). */
static char hook_identity;
#define HOOK_LINK ((struct selfprobe_link *)(void *)&hook_identity)

/* The loader's notification: a probe of our own on _r_debug.r_brk. */
static int on_link_map_change(struct selfprobe_ctx *ctx, void *data);

static int hook_loader(void)
{
	if (hooked)
		return 0;
	uintptr_t brk = _r_debug.r_brk;
	if (!brk)
		return -ENOSYS;
	int rc = sp_probe_attach_internal("selfprobe:loader-notification", brk, false, on_link_map_change,
					  HOOK_LINK);
	hooked = rc == 0;
	return rc;
}

static struct watched *add(const struct sp_spec_item *item, selfprobe_handler_fn fn, void *data,
			   struct selfprobe_link *link)
{
	struct watched *w = sp_calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->text = sp_strdup(item->text);
	w->fn = fn;
	w->data = data;
	w->link = link;
	w->next = watch;
	watch = w;
	return w;
}

int sp_loadwatch_defer(const struct sp_spec_item *item, selfprobe_handler_fn fn, void *data,
		       struct selfprobe_link *link)
{
	int rc = hook_loader();
	if (rc)
		return rc;
	return add(item, fn, data, link) ? 0 : -ENOMEM;
}

void sp_loadwatch_defer_attached(const struct sp_spec_item *item, selfprobe_handler_fn fn,
				 void *data, struct selfprobe_link *link, const struct sp_object *obj)
{
	/* a failure here only costs the re-attachment after a reload */
	if (hook_loader() != 0)
		return;
	struct watched *w = add(item, fn, data, link);
	if (!w)
		return;
	w->path = sp_strdup(obj->path);
	w->bias = obj->bias;
	w->ever = true;
}

void sp_loadwatch_drop_link(struct selfprobe_link *link)
{
	for (struct watched **pp = &watch; *pp;) {
		struct watched *w = *pp;
		if (w->link == link && link) {
			*pp = w->next;
			sp_free(w->text);
			sp_free(w->path);
			sp_free(w);
		} else
			pp = &w->next;
	}
}

void sp_loadwatch_unhook_idle(void)
{
	sp_probe_lock();
	bool idle = hooked && !watch;
	if (idle)
		hooked = false;
	sp_probe_unlock();
	if (idle)
		sp_probe_detach_link(HOOK_LINK);
}

void sp_loadwatch_each_unattached(sp_loadwatch_visit_fn fn, void *ctx)
{
	for (struct watched *w = watch; w; w = w->next) {
		if (w->ever)
			continue;
		struct sp_spec_item item;
		char *err = NULL;
		if (sp_spec_parse_probe(w->text, &item, &err) == 0) {
			fn(&item, ctx);
			sp_spec_item_free(&item);
		} else {
			/* the item carried an action: parse it as a spec */
			struct sp_spec s = { 0 };
			if (sp_spec_parse(w->text, &s) == 0 && s.n_items == 1)
				fn(&s.items[0], ctx);
			sp_spec_free(&s);
		}
		sp_free(err);
	}
}

/* Re-parse W's item (with its action). */
static int item_of(const struct watched *w, struct sp_spec *s)
{
	memset(s, 0, sizeof(*s));
	if (sp_spec_parse(w->text, s) != 0 || s->n_items != 1) {
		sp_spec_free(s);
		return -EINVAL;
	}
	return 0;
}

static void rescan(void)
{
	struct sp_object *objs;
	size_t n;
	size_t mark = sp_probe_retired_mark();   /* what others retired is theirs to free */
	if (sp_maps_snapshot(&objs, &n) != 0)
		return;
	sp_probe_objects_gone(objs, n);
	for (struct watched *w = watch; w; w = w->next) {
		if (w->path) {
			bool still = false;
			for (size_t i = 0; i < n && !still; i++)
				still = objs[i].bias == w->bias && strcmp(objs[i].path, w->path) == 0;
			if (still)
				continue;
			sp_free(w->path);     /* unloaded: watch for it again */
			w->path = NULL;
		}
		struct sp_spec s;
		if (item_of(w, &s) != 0)
			continue;
		char err[256];
		int idx = sp_maps_find(objs, n, s.items[0].object, err, sizeof(err));
		if (idx >= 0) {
			sp_info("%s: %s is loaded: attaching", w->text, objs[idx].path);
			if (sp_probe_attach_object(&s.items[0], &objs[idx], w->fn, w->data, w->link) >= 0) {
				w->path = sp_strdup(objs[idx].path);
				w->bias = objs[idx].bias;
				w->ever = true;
			}
		}
		sp_spec_free(&s);
	}
	sp_maps_free(objs, n);
	sp_probe_reclaim_locked(mark);   /* inside the loader: no one else rescans */
}

static int on_link_map_change(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	if (_r_debug.r_state != RT_CONSISTENT)
		return 0;
	/* The runtime's own work: nothing it calls is the application's. */
	sp_tls.runtime++;
	sp_probe_lock();
	rescan();
	sp_stack_note_objects();   /* the launcher symbolises stacks with them */
	sp_probe_unlock();
	sp_tls.runtime--;
	return 0;
}
