/* libsp_retsafe_lib.so — linked into sp_retsafe for its "caller" mode
 * (e2e_retall.py): rsl_next_self asks dlsym(RTLD_NEXT) for a symbol only
 * this library defines.  glibc answers for the object its caller lies in
 * (dlsym's own return address): from here nothing later defines it, so the
 * answer is NULL; asked for another object, it may be this one's. */
#define _GNU_SOURCE
#include <dlfcn.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT int rsl_self;
static void *volatile found;

/* not a tail call: dlsym's caller must be this library, not ours */
EXPORT __attribute__((noinline)) void *rsl_next_self(void)
{
	found = dlsym(RTLD_NEXT, "rsl_self");
	return found;
}
