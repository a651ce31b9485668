/* probe — the registry: attached probes, the sites they sit on, the errors
 * met while attaching, and attach/detach themselves.
 *
 * Attaching one spec item: find the object among the loaded ones (maps),
 * its function symbols (elfsym; an IFUNC is resolved to the implementation
 * the process calls), check the site is an instruction boundary of a
 * function (insn), decide how a trap there resumes (emulate, or an
 * out-of-line copy in near code memory), then arm the site: int3 written
 * through patch, every core synchronised.  Every failure is a message for
 * the log and the report's errors; the application is never touched for an
 * item that failed.
 */
#ifndef SP_PROBE_H
#define SP_PROBE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "selfprobe.h"
#include "site.h"
#include "spec.h"
#include "latency.h"
#include "tstate.h"
#include "usdt.h"

struct sp_probe {
	uint32_t id;                     /* counter index (tstate) */
	struct sp_site *site;
	char *spec;                      /* the spec item as written */
	char *label;                     /* kind:object:symbol, for the text report */
	enum sp_probe_kind kind;
	enum sp_action_kind action;
	selfprobe_handler_fn fn;         /* NULL: count only */
	const uint8_t *inline_code;      /* native code doing what fn does, run in
					  * the trampoline after the inline count
					  * while this is the site's only probe
					  * (bt_jit.h), or NULL */
	bool runtime_fn;                 /* fn is the runtime's own (an action,
					  * an internal probe): it runs as the
					  * runtime, its calls are not counted */
	bool wants_return;               /* uretprobe, usession, latency */
	bool go_ret;                     /* ... on a Go function: its returns are seen
					  * by internal probes on its RETs (golang.h) */
	uintptr_t semaphore;             /* usdt: its *_ENABLED() counter, or 0 */
	int usdt_nargs;                  /* usdt: parsed arguments (-1: unparsable) */
	struct sp_usdt_arg *usdt_args;   /* usdt: usdt_nargs of them, else NULL
					  * (pointers, not arrays: a probe of
					  * libc:* was 1.2 KiB, 4.5 MB of fresh
					  * pages for 3600) */
	int lat_slot;                    /* latency histogram slot, or -1 */
	void *data;
	char *object;                    /* the object's path */
	char *symbol;                    /* symbol[+off], or NULL for a bare address */
	char *implementation;            /* IFUNC: the chosen implementation, else NULL */
	uintptr_t bias;                  /* the object's load bias when attached */
	uintptr_t vaddr;                 /* the site's ELF address (a reload's is the same) */
	bool attached;
	bool detaching;                  /* detached, its counters not yet frozen
					  * (sp_probe_detach_link) */
	bool unloaded;                   /* detached because its object went away */
	bool freed_id;                   /* detached and its id given back: dormant */
	bool revived;                    /* a dormant probe attached again, being armed */
	bool internal;                   /* the runtime's own (not reported) */
	int shm_record;                  /* its record in the launcher's file, or -1 */
	int tl_label;                    /* its timeline label (timeline.h), or -1 */
	_Atomic bool faulted;            /* its handler faulted: not called again */
	int fault_sig;                   /* and how */
	uintptr_t fault_addr;
	/* Counts and histogram of its earlier attachments, frozen at each
	 * detach or unload; while attached the live counters add to them.  A
	 * probe attached again (same spec, object, site, kind and action,
	 * whatever its handler: an API attach after a detach, a library or a
	 * plugin loaded again) is the same record. */
	uint64_t final[SP_N_COUNTERS];
	struct sp_lat *final_lat;        /* latency probes only, else NULL */
	struct sp_probe *next;           /* registry list, in attach order */
	struct sp_probe *next_dormant;   /* the dormant list (engine/registry.c) */
	struct selfprobe_link *link;     /* the link this probe belongs to, if any */
};

/* P's frozen histogram (zero when it has none). */
static inline struct sp_lat sp_probe_final_lat(const struct sp_probe *p)
{
	return p->final_lat ? *p->final_lat : (struct sp_lat){ 0 };
}

struct sp_error {
	char *spec;
	char *message;
	struct sp_error *next;
};

/* The registry's calls: engine/registry.h. */

#endif
