/* registry — registrations the layers above the engine make with it
 * (registry.c).  The registry's own calls are declared in probe.h. */
#ifndef SP_REGISTRY_H
#define SP_REGISTRY_H

/* Run FN in a fork child, after the registry's own reset (the report's
 * owner, for one).  Up to a few; registered once, at set-up. */
void sp_probe_on_fork_child(void (*fn)(void));

/* Run FN, registry lock held, each time a return probe is attached: the
 * interposed unwinder's hook (unwind_hooks.c) registers itself here. */
void sp_probe_on_return_probe(void (*fn)(void));

/* Parse SPEC (the text of UPROBE_SPEC) and attach every item; its errors go
 * to the report.  0, or -EINVAL when any item failed. */
int sp_probe_attach_spec(const char *spec);

#endif
