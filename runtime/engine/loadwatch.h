/* loadwatch — objects that come and go after start-up.
 *
 * A spec item naming an object that is not loaded yet stays pending; it
 * attaches the moment the object appears, whether dlopen loaded it or it
 * came in as a dependency, and attaches again after a dlclose and a new
 * dlopen.  On dlclose the object's probes are detached and keep their
 * counts for the report.
 *
 * Mechanism: the dynamic linker's debugger protocol (<link.h>'s r_debug).
 * The loader calls the function at _r_debug.r_brk (_dl_debug_state) after
 * every change of the link map: with r_state RT_ADD/RT_DELETE before it,
 * RT_CONSISTENT after.  We probe that function with an internal probe of
 * our own.  Why this and not interposing dlopen, nor LD_AUDIT:
 *   - it sees every load and unload, including those libc makes itself
 *     (NSS modules, iconv) that never go through the public dlopen, and
 *     dependencies pulled in by a dlopen;
 *   - the RT_CONSISTENT call comes after mapping and relocation but before
 *     the new objects' constructors run, so probes are in place before any
 *     of their code runs; and on unload it comes after the unmapping, when
 *     the loaded objects can simply be listed again;
 *   - LD_AUDIT needs the user to set a second variable and runs its module
 *     in another namespace with its own libc.
 * The handler runs inside the loader (its lock held, at a call boundary):
 * it may allocate, read files and list objects, but must not dlopen.
 */
#ifndef SP_LOADWATCH_H
#define SP_LOADWATCH_H

#include <stdbool.h>

#include "selfprobe.h"
#include "spec.h"

struct selfprobe_link;

/* Keep ITEM for objects loaded later (registry lock held).  0 or -errno. */
int sp_loadwatch_defer(const struct sp_spec_item *item, selfprobe_handler_fn fn, void *data,
		       struct selfprobe_link *link);

/* ITEM just attached in OBJ: watch it too, so that it attaches again
 * after the object is unloaded and loaded anew (registry lock held). */
struct sp_object;
void sp_loadwatch_defer_attached(const struct sp_spec_item *item, selfprobe_handler_fn fn,
				 void *data, struct selfprobe_link *link, const struct sp_object *obj);

/* Forget the pending items of LINK (detach). */
void sp_loadwatch_drop_link(struct selfprobe_link *link);

/* Nothing watched any more (the last link detached): the loader's
 * notification unprobed, its bytes restored — `selfprobe detach` leaves no
 * byte patched.  Registry lock not held. */
void sp_loadwatch_unhook_idle(void);

/* Items still pending, for the report's errors at exit. */
typedef void (*sp_loadwatch_visit_fn)(const struct sp_spec_item *item, void *ctx);
void sp_loadwatch_each_unattached(sp_loadwatch_visit_fn fn, void *ctx);

#endif
