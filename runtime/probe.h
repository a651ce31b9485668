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
	bool runtime_fn;                 /* fn is the runtime's own (an action,
					  * an internal probe): it runs as the
					  * runtime, its calls are not counted */
	bool wants_return;               /* uretprobe, usession, latency */
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
	 * probe attached again (same spec, object, site and handler: an API
	 * attach after a detach, a library loaded again) is the same record. */
	uint64_t final[SP_N_COUNTERS];
	struct sp_lat *final_lat;        /* latency probes only, else NULL */
	struct sp_probe *next;           /* registry list, in attach order */
	struct sp_probe *next_dormant;   /* the dormant list (probe.c) */
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

enum sp_mode_pref { SP_PREF_AUTO, SP_PREF_INT3, SP_PREF_JMP };
extern enum sp_mode_pref sp_mode_pref;

/* Attach every site ITEM names.  Handler FN (NULL: the item's action).
 * On success returns the number of probes made and, when LINK is non-NULL,
 * ties them to it.  On failure: -errno, the error recorded (report + log)
 * unless QUIET. */
long sp_probe_attach_item(const struct sp_spec_item *item, selfprobe_handler_fn fn,
			  void *data, struct selfprobe_link *link);
/* The registry lock, for modules that attach on the runtime's behalf. */
void sp_probe_lock(void);
void sp_probe_unlock(void);

/* Attach ITEM in OBJ (registry lock held).  Count attached, or -errno with
 * the error recorded. */
struct sp_object;
long sp_probe_attach_object(const struct sp_spec_item *item, const struct sp_object *obj,
			    selfprobe_handler_fn fn, void *data, struct selfprobe_link *link);

/* The runtime's own probe NAME at runtime address ADDR (in the main
 * program only, when MAIN_ONLY), calling FN; not in the report (registry
 * lock held).  0 or -errno. */
int sp_probe_attach_internal(const char *name, uintptr_t addr, bool main_only, selfprobe_handler_fn fn);

/* Free the probe vectors replaced so far, after a quiescence, the registry
 * lock held: only where no thread can be waiting for it inside dispatch
 * (the loader notification's handler, whose loader lock serialises them). */
void sp_probe_reclaim_locked(void);

/* Detach the probes of objects no longer in OBJS (registry lock held). */
void sp_probe_objects_gone(const struct sp_object *objs, size_t n);

/* Detach every probe of LINK.  0 or -errno. */
int sp_probe_detach_link(struct selfprobe_link *link);

/* Record an error (log + report). */
void sp_probe_error(const char *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Walk the registry (for the report).  The lists only grow; safe to walk
 * while others attach. */
struct sp_probe *sp_probe_first(void);
struct sp_error *sp_error_first(void);
/* Record in the errors what another tool did to our sites (coexist.h),
 * before a report is written. */
void sp_probe_coexist_report(void);
/* Copy the errors so far into the launcher's file (once it is attached). */
void sp_probe_publish_errors(void);
/* The probe's counters (enum sp_counter), live or frozen at detach. */
void sp_probe_counts(const struct sp_probe *p, uint64_t *out);

#endif
