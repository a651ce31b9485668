/* setup — the registry's set-up, once per process, and its fork child; see registry.h. */
#include "registry.h"
#include "coexist.h"
#include "gotheap.h"
#include "latency.h"
#include "log.h"
#include "patch.h"
#include "quiesce.h"
#include "registry_int.h"
#include "shm.h"
#include "shmprobe.h"
#include "stack.h"
#include "timeline.h"
#include "trap.h"
#include "tstate.h"
#include "uret.h"
#include "xsave.h"

#include <inttypes.h>
#include <pthread.h>
#include <string.h>

/* What the layers above registered (registry.h). */
static void (*fork_children[4])(void);
static int n_fork_children;

void sp_probe_on_fork_child(void (*fn)(void))
{
	if (n_fork_children < (int)(sizeof(fork_children) / sizeof(fork_children[0])))
		fork_children[n_fork_children++] = fn;
}

/* In a fork child only the forking thread survives: locks another thread
 * held are reset, counts start from zero (each process reports its own
 * hits; %p keeps the reports apart), and /proc/self/mem is reopened. */
static void atfork_child(void)
{
	pthread_mutex_init(&sp_registry_lock, NULL);
	sp_patch_atfork_child();
	bool shared = sp_shm_atfork_child() == 0 && sp_shm_active();
	sp_tstate_atfork_child();
	sp_quiesce_atfork_child();
	sp_uret_atfork_child();
	sp_latency_atfork_child();
	for (int i = 0; i < n_fork_children; i++)
		fork_children[i]();
	sp_timeline_atfork_child();
	sp_stack_atfork_child();
	if (shared)
		sp_probe_publish_errors();   /* the child's report has them too */
	for (struct sp_probe *p = atomic_load(&sp_registry_probes); p; p = p->next) {
		memset(p->final, 0, sizeof(p->final));
		if (p->final_lat)
			memset(p->final_lat, 0, sizeof(*p->final_lat));
		p->shm_record = -1;
		if (shared && p->attached) {
			sp_shm_publish(p);
			sp_timeline_label(p);   /* labels are the child's records now */
		}
	}
}

/* coexist.h: another tool's bytes over S, named for each probe there. */
static void coexist_report(const struct sp_site *s, const char *what, uint32_t late)
{
	for (struct sp_probe *p = sp_probe_first(); p; p = p->next) {
		if (p->site != s || p->internal)
			continue;
		sp_probe_error(p->spec, "%s at %#" PRIxPTR ": bytes changed by another tool (a kernel uprobe?): "
			       "%s; %" PRIu32 " hits ran its first instruction elsewhere (counted, as missed)",
			       p->symbol ? p->symbol : "site", s->addr, what, late);
	}
}

/* A fork waits for the stack walks under way (their locks would stay
 * held in the child), then for the patch writers. */
static void atfork_prepare(void)
{
	sp_stack_atfork_prepare();
	sp_patch_atfork_prepare();
}

static void atfork_parent(void)
{
	sp_patch_atfork_parent();
	sp_stack_atfork_parent();
}

static void setup_once(void)
{
	sp_gotheap_take();   /* before libelf's first allocation */
	sp_log_set_error_sink(sp_probe_record_error);   /* the lower modules' errors: the report's */
	sp_xsave_init();
	sp_patch_set_fault_handler(sp_trap_install);   /* before any write */
	sp_coexist_on_report(coexist_report, sp_probe_trylock, sp_probe_unlock);
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void sp_probe_setup(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, setup_once);
}
