/* unwind_hooks — unwinders must see real return addresses.
 *
 * A frame whose return address was swapped for sp_uret_trampoline would stop
 * an unwinder (there is no unwind information that could lead from the
 * trampoline's address back to the right caller: the original address lives
 * in a per-thread shadow stack).  So every public entry into an unwinder is
 * interposed here: first the thread's original return addresses are written
 * back (sp_uret_restore_all), then the real function runs.  The frames so
 * restored return directly, unprobed; their returns are counted lost.  A
 * walk that unwinds nothing (backtrace, _Unwind_Backtrace, unw_backtrace)
 * gets the real addresses only while it runs, and the returns stay probed.
 *
 * Interposed (exported by the version script, the real one found with
 * dlsym(RTLD_NEXT), else in libgcc_s.so.1 / libunwind):
 *   _Unwind_RaiseException, _Unwind_Resume_or_Rethrow, _Unwind_Resume,
 *   _Unwind_ForcedUnwind   C++ throw, rethrow, cleanups, forced unwinding
 *   _Unwind_Backtrace      libgcc's stack walk
 *   backtrace              glibc's (it calls libgcc through a private
 *                          pointer, so the hook above would not see it)
 *   pthread_exit           its forced unwind goes through that private
 *                          pointer too
 *   _ULx86_64_init_local, unw_backtrace   libunwind's local walks
 * Thread cancellation unwinds from inside libc and cannot be interposed:
 * its unwinder stops at the first swapped frame and the thread exits
 * without running the C++ destructors of the frames above it; C cleanup
 * handlers (pthread_cleanup_push) still run.
 */
#include "uret.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <unwind.h>

#define HOOK __attribute__((visibility("default")))

static void *real(const char *name, const char *lib)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p && lib) {
		void *h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
		if (!h)
			h = dlopen(lib, RTLD_LAZY);
		if (h)
			p = dlsym(h, name);
	}
	return p;
}

typedef _Unwind_Reason_Code (*exc_fn)(struct _Unwind_Exception *);
typedef void (*resume_fn)(struct _Unwind_Exception *);
typedef _Unwind_Reason_Code (*forced_fn)(struct _Unwind_Exception *, _Unwind_Stop_Fn, void *);
typedef _Unwind_Reason_Code (*walk_fn)(_Unwind_Trace_Fn, void *);
typedef int (*bt_fn)(void **, int);
typedef void (*exit_fn)(void *);
typedef int (*init_fn)(void *, void *);

/* The real NAME, looked up once. */
#define REAL(type, name, lib) \
	static type real_fn; \
	if (!real_fn) \
		real_fn = (type)real(#name, lib)

HOOK _Unwind_Reason_Code _Unwind_RaiseException(struct _Unwind_Exception *e)
{
	REAL(exc_fn, _Unwind_RaiseException, "libgcc_s.so.1");
	sp_uret_restore_all();
	return real_fn ? real_fn(e) : _URC_FATAL_PHASE1_ERROR;
}

HOOK _Unwind_Reason_Code _Unwind_Resume_or_Rethrow(struct _Unwind_Exception *e)
{
	REAL(exc_fn, _Unwind_Resume_or_Rethrow, "libgcc_s.so.1");
	sp_uret_restore_all();
	return real_fn ? real_fn(e) : _URC_FATAL_PHASE1_ERROR;
}

HOOK void _Unwind_Resume(struct _Unwind_Exception *e)
{
	REAL(resume_fn, _Unwind_Resume, "libgcc_s.so.1");
	sp_uret_restore_all();
	real_fn(e);
	__builtin_unreachable();
}

HOOK _Unwind_Reason_Code _Unwind_ForcedUnwind(struct _Unwind_Exception *e, _Unwind_Stop_Fn stop, void *arg)
{
	REAL(forced_fn, _Unwind_ForcedUnwind, "libgcc_s.so.1");
	sp_uret_restore_all();
	return real_fn ? real_fn(e, stop, arg) : _URC_FATAL_PHASE2_ERROR;
}

HOOK _Unwind_Reason_Code _Unwind_Backtrace(_Unwind_Trace_Fn fn, void *arg)
{
	REAL(walk_fn, _Unwind_Backtrace, "libgcc_s.so.1");
	size_t n = sp_uret_unswap();
	_Unwind_Reason_Code rc = real_fn ? real_fn(fn, arg) : _URC_END_OF_STACK;
	sp_uret_reswap(n);
	return rc;
}

HOOK int backtrace(void **buffer, int size)
{
	REAL(bt_fn, backtrace, NULL);
	size_t n = sp_uret_unswap();
	int rc = real_fn ? real_fn(buffer, size) : 0;
	sp_uret_reswap(n);
	return rc;
}

HOOK void pthread_exit(void *retval)
{
	REAL(exit_fn, pthread_exit, NULL);
	sp_uret_restore_all();
	real_fn(retval);
	__builtin_unreachable();
}

HOOK int _ULx86_64_init_local(void *cursor, void *uc)
{
	REAL(init_fn, _ULx86_64_init_local, "libunwind.so.8");
	sp_uret_restore_all();
	return real_fn ? real_fn(cursor, uc) : -1;
}

HOOK int unw_backtrace(void **buffer, int size)
{
	REAL(bt_fn, unw_backtrace, "libunwind.so.8");
	size_t n = sp_uret_unswap();
	int rc = real_fn ? real_fn(buffer, size) : 0;
	sp_uret_reswap(n);
	return rc;
}
