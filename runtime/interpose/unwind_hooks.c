/* unwind_hooks — unwinders must see real return addresses.
 *
 * A frame whose return address was swapped for sp_uret_trampoline would stop
 * an unwinder (there is no unwind information that could lead from the
 * trampoline's address back to the right caller: the original address lives
 * in a per-thread shadow stack).  So every public entry into an unwinder is
 * interposed here: first the thread's original return addresses are written
 * back (sp_uret_restore_all), then the real function runs.  A
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
 * Restored entries are parked, not dropped: __cxa_begin_catch (also
 * interposed: the catching frame's landing pad calls it once the unwinding
 * is over) gives the trampoline back to the frames above the catcher and
 * counts the unwound ones lost.
 * Thread cancellation unwinds from inside libc: glibc calls libgcc_s's
 * _Unwind_ForcedUnwind through a pointer it looked up in libgcc_s itself,
 * which no interposer sees (its unwinder would stop at the first swapped
 * frame, and the thread exit without running the C++ destructors of the
 * frames above).  So once a return probe exists, an internal probe of ours
 * on libgcc_s's own _Unwind_ForcedUnwind restores the addresses at its
 * entry (sp_unwind_hooks_arm); the frames' returns are then counted lost,
 * as with pthread_exit.
 *
 * The longjmp family (longjmp, _longjmp, siglongjmp, __longjmp_chk) is
 * interposed for another reason: a signal handler that jumps out of a
 * dispatch it interrupted (or a handler of ours that jumps out) abandons
 * that dispatch, and a detach would wait for it for ever.  The hook tells
 * tstate which dispatches the jump leaves (sp_tstate_unwind), then jumps.
 */
#include "selfprobe.h"
#include "heap.h"
#include "unwind_hooks.h"
#include "elfsym.h"
#include "maps.h"
#include "probe.h"
#include "registry.h"
#include "uret.h"
#include "tstate.h"
#include "guard.h"

#include <setjmp.h>
#include <string.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
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
typedef void *(*catch_fn)(void *);
typedef void (*exit_status_fn)(int);

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

/* The walks below start at their caller, which is now this file's hook:
 * that one frame is dropped so the trace is what the program asked for. */
struct skip_first {
	_Unwind_Trace_Fn fn;
	void *arg;
	int skip;
};

static _Unwind_Reason_Code skip_first_frame(struct _Unwind_Context *ctx, void *v)
{
	struct skip_first *s = v;
	if (s->skip) {
		s->skip = 0;
		return _URC_NO_REASON;
	}
	return s->fn(ctx, s->arg);
}

HOOK _Unwind_Reason_Code _Unwind_Backtrace(_Unwind_Trace_Fn fn, void *arg)
{
	REAL(walk_fn, _Unwind_Backtrace, "libgcc_s.so.1");
	struct skip_first s = { fn, arg, 1 };
	size_t n = sp_uret_unswap();
	_Unwind_Reason_Code rc = real_fn ? real_fn(skip_first_frame, &s) : _URC_END_OF_STACK;
	sp_uret_reswap(n);
	return rc;
}

/* backtrace-like: fill BUFFER from a walk of SIZE + 1 and drop our frame. */
static int walk_minus_one(bt_fn walk, void **buffer, int size)
{
	if (!walk || size <= 0)
		return 0;
	void *small[128];
	void **tmp = size < 128 ? small : sp_malloc(((size_t)size + 1) * sizeof(*tmp));
	if (!tmp)
		return 0;
	size_t n = sp_uret_unswap();
	int got = walk(tmp, size + 1);
	sp_uret_reswap(n);
	int out = got > 1 ? got - 1 : 0;
	for (int i = 0; i < out; i++)
		buffer[i] = tmp[i + 1];
	if (tmp != small)
		sp_free(tmp);
	return out;
}

HOOK int backtrace(void **buffer, int size)
{
	REAL(bt_fn, backtrace, NULL);
	return walk_minus_one(real_fn, buffer, size);
}

HOOK void pthread_exit(void *retval)
{
	REAL(exit_fn, pthread_exit, NULL);
	sp_uret_restore_all();
	real_fn(retval);
	__builtin_unreachable();
}

/* The catching frame's landing pad calls this when the unwinding is over:
 * the frames above it kept their return probes. */
HOOK void *__cxa_begin_catch(void *exc)
{
	REAL(catch_fn, __cxa_begin_catch, "libstdc++.so.6");
	sp_uret_unpark((uintptr_t)__builtin_frame_address(0) + 16);
	return real_fn ? real_fn(exc) : NULL;
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
	return walk_minus_one(real_fn, buffer, size);
}

/* _exit and _Exit skip the exit handlers, the report's included: write it
 * first (selfprobe_exit_report knows whether this process should). */
HOOK void _exit(int status)
{
	REAL(exit_status_fn, _exit, NULL);
	selfprobe_exit_report();
	real_fn(status);
	__builtin_unreachable();
}

HOOK void _Exit(int status)
{
	REAL(exit_status_fn, _Exit, NULL);
	selfprobe_exit_report();
	real_fn(status);
	__builtin_unreachable();
}

/* ---- the longjmp family ---- */

typedef void (*jump_fn)(struct __jmp_buf_tag *, int) __attribute__((noreturn));
void __longjmp_chk(struct __jmp_buf_tag env[1], int val) __attribute__((noreturn));

/* Looked up before the program runs (a jump may come from a signal
 * handler, where dlsym must not run); lazily only as a fallback. */
static jump_fn real_longjmp, real__longjmp, real_siglongjmp, real_longjmp_chk;

__attribute__((constructor)) static void find_jumps(void)
{
	sp_tls.runtime++;   /* the loader's calls (dlsym, its locks) are ours, not counted */
	real_longjmp = (jump_fn)real("longjmp", NULL);
	real__longjmp = (jump_fn)real("_longjmp", NULL);
	real_siglongjmp = (jump_fn)real("siglongjmp", NULL);
	real_longjmp_chk = (jump_fn)real("__longjmp_chk", NULL);
	sp_tls.runtime--;
}

/* The stack pointer ENV restores.  glibc on x86-64 keeps it in __jmpbuf[6],
 * mangled (PTR_MANGLE: xor with the thread's pointer guard, %fs:0x30 in
 * its TCB, then rotate left by 17). */
static uintptr_t jump_target_sp(const struct __jmp_buf_tag *env)
{
	uintptr_t v = (uintptr_t)env->__jmpbuf[6], guard;
	__asm__("mov %%fs:0x30, %0" : "=r"(guard));
	return ((v >> 17) | (v << 47)) ^ guard;
}

#define JUMP_HOOK(name, slot)                                         \
	HOOK void name(struct __jmp_buf_tag env[1], int val)          \
	{                                                             \
		if (!slot)                                            \
			find_jumps();                                 \
		if (sp_tstate_unwind(jump_target_sp(env)) == 0)       \
			sp_guard_suspend();   /* no handler of ours runs */ \
		slot(env, val);                                       \
	}

JUMP_HOOK(longjmp, real_longjmp)
JUMP_HOOK(_longjmp, real__longjmp)
JUMP_HOOK(siglongjmp, real_siglongjmp)
JUMP_HOOK(__longjmp_chk, real_longjmp_chk)

/* ---- thread cancellation: an internal probe in libgcc_s ---- */

static int on_forced_unwind(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	sp_uret_restore_all();
	return 0;
}

/* The internal probe's identity, to take it away again (disarm below). */
static struct sp_hook_identity forced;
static bool armed;

void sp_unwind_hooks_arm(void)
{
	if (armed)
		return;
	struct sp_object *objs;
	size_t n;
	if (sp_maps_snapshot(&objs, &n) != 0)
		return;
	for (size_t i = 0; i < n && !armed; i++) {
		const char *base = strrchr(objs[i].path, '/');
		base = base ? base + 1 : objs[i].path;
		uint64_t value;
		if (strncmp(base, "libgcc_s.so", 11) != 0 ||
		    sp_elf_find_any_symbol(objs[i].path, "_Unwind_ForcedUnwind", &value) != 0)
			continue;
		armed = sp_probe_attach_internal("selfprobe:forced-unwind", objs[i].bias + (uintptr_t)value,
						 false, on_forced_unwind, sp_hook_link(&forced)) == 0;
	}
	sp_maps_free(objs, n);
}

/* The last return probe went away (a `selfprobe detach`): libgcc_s gets
 * its bytes back; the next return probe places the hook again. */
static void unwind_hooks_disarm(void)
{
	sp_probe_lock();
	bool was = armed;
	struct selfprobe_link *link = sp_hook_retire(&forced);
	armed = false;
	sp_probe_unlock();
	if (was)
		sp_probe_detach_link(link);
}

/* The registry knows nothing of this layer: we tell it, as the library is
 * loaded (before any probe can be attached), what to run when a return
 * probe is attached, and when none is left. */
__attribute__((constructor(101))) static void register_with_registry(void)
{
	sp_probe_on_return_probe(sp_unwind_hooks_arm, unwind_hooks_disarm);
}
