/* resolve — from a spec item to probes: the plugin handler it names, the
 * loaded object it names (or waiting for the object, loadwatch.h, or for the
 * program's entry point, plugin.h), then the registry (registry.h). */
#ifndef SP_RESOLVE_H
#define SP_RESOLVE_H

#include "selfprobe.h"
#include "spec.h"

/* Attach every site ITEM names.  Handler FN (NULL: the item's action).
 * On success returns the number of probes made and, when LINK is non-NULL,
 * ties them to it.  On failure: -errno, the error recorded (report + log). */
long sp_probe_attach_item(const struct sp_spec_item *item, selfprobe_handler_fn fn,
			  void *data, struct selfprobe_link *link);

/* Parse SPEC (the text of UPROBE_SPEC) and attach every item; its errors go
 * to the report.  0, or -EINVAL when any item failed. */
int sp_probe_attach_spec(const char *spec);

/* Forget LINK's pending items, then detach its probes.  0 or -errno. */
int sp_probe_detach(struct selfprobe_link *link);

/* Who attaches the items of a bpftrace program (action SP_ACT_PROGRAM):
 * bt_run.c's, registered by the API before it attaches a spec. */
void sp_resolve_on_program(long (*attach)(const struct sp_spec_item *item));

#endif
