/* golang_goend — see golang_goend.h. */
#include "golang_goend.h"
#include "elfsym.h"
#include "golang_ret.h"
#include "heap.h"
#include "probe.h"
#include "registry.h"

#include <stdbool.h>
#include <string.h>

/* The objects hooked (their paths), for the life of the hooks: one
 * arming's, taken away together (disarm below). */
#define MAX_HOOKED 8
static const char *hooked[MAX_HOOKED];
static int n_hooked;
static struct sp_hook_identity goend;

static bool is_hooked(const char *path)
{
	for (int i = 0; i < n_hooked; i++)
		if (strcmp(hooked[i], path) == 0)
			return true;
	return false;
}

static void hook(const struct sp_probe *p)
{
	uint64_t value;
	if (n_hooked == MAX_HOOKED || !(hooked[n_hooked] = sp_strdup(p->object)))
		return;
	n_hooked++;   /* tried once per arming, found or not */
	if (sp_elf_find_any_symbol(p->object, "runtime.goexit1", &value) != 0) {
		sp_probe_error("go", "%s has no runtime.goexit1 symbol: a goroutine that ends with "
			       "return-probed frames (runtime.Goexit) keeps their records until a "
			       "goroutine reusing it meets them", p->object);
		return;
	}
	int rc = sp_probe_attach_internal("selfprobe:go-goroutine-end", p->bias + (uintptr_t)value, false,
					  sp_go_ret_gone, sp_hook_link(&goend));
	if (rc < 0)
		sp_probe_error("go", "cannot probe runtime.goexit1 in %s: a goroutine that ends with "
			       "return-probed frames keeps their records", p->object);
}

void sp_go_goend_arm(void)
{
	for (const struct sp_probe *p = sp_probe_first(); p; p = p->next)
		if (p->attached && p->go_ret && !p->internal && p->object && !is_hooked(p->object))
			hook(p);
}

/* The last return probe went away (a `selfprobe detach`): the runtime gets
 * its bytes back; the next Go return probe places the hook again. */
static void goend_disarm(void)
{
	sp_probe_lock();
	int was = n_hooked;
	struct selfprobe_link *link = sp_hook_retire(&goend);
	for (int i = 0; i < n_hooked; i++)
		sp_free((void *)hooked[i]);
	n_hooked = 0;
	sp_probe_unlock();
	if (was)
		sp_probe_detach_link(link);
}

__attribute__((constructor(101))) static void register_with_registry(void)
{
	sp_probe_on_return_probe(sp_go_goend_arm, goend_disarm);
}
