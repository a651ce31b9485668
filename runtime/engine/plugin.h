/* plugin — handlers in shared objects named by a spec ("=PATH:FUNCTION").
 *
 * Each path is loaded once (dlopen RTLD_NOW|RTLD_LOCAL), must declare
 * SELFPROBE_PLUGIN with our ABI version, may have selfprobe_plugin_init
 * (called once, with UPROBE_PLUGIN_ARGS) and selfprobe_plugin_fini (called
 * at exit).  A missing file, a file that is not a shared object, a missing
 * ABI mark, a wrong ABI version, a missing function or an init that fails
 * are errors for that item only.
 *
 * Timing: the preload attaches before libc's own constructor has run
 * (-z initfirst); dlopen at that point would run libc's initialisation too
 * early.  So plugin items found then wait for the program's entry point
 * (AT_ENTRY, probed by the runtime itself): every constructor has run and
 * the program has not started, and the items attach there.
 */
#ifndef SP_PLUGIN_H
#define SP_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "selfprobe.h"
#include "spec.h"

/* Can plugins be loaded now? (libc initialised) */
bool sp_plugin_can_load(void);

/* The handler ITEM's plugin action names.  0, or -errno with ERR. */
int sp_plugin_handler(const struct sp_spec_item *item, selfprobe_handler_fn *fn, char *err, size_t errlen);

/* Keep ITEM until the program's entry point (registry lock held), then
 * hand its text to ATTACH (resolve.h's sp_probe_attach_spec: passed in, so
 * that plugins do not call up into the resolution). */
int sp_plugin_defer(const struct sp_spec_item *item, int (*attach)(const char *spec));

/* Call every loaded plugin's fini (at exit, after the report). */
void sp_plugin_fini_all(void);

#endif
