/* Return and session probes through the public API, in-process, on this
 * test binary's own functions (each test twice: UPROBE_MODE int3 and auto):
 *
 *   - a session handler that skips every other return: its return call
 *     runs exactly for the even calls, reads the cookie the entry call
 *     wrote, sees selfprobe_retval == the function's result, and
 *     selfprobe_is_return is false at entry, true at return; the report's
 *     hits/returns agree;
 *   - per-call cookies through recursion (returns innermost first);
 *   - a return handler that changes rax changes the caller's result;
 *   - a return handler that clobbers vector and x87 state leaves double,
 *     struct-of-doubles and long double results intact;
 *   - a probe hit inside a return handler: counted, no handler, missed;
 *   - glibc backtrace() inside a return handler: no crash, and it shows
 *     the probed function's real caller (the address the entry saw);
 *   - the latency action: histogram count == hits.
 *
 * Criterion runs every test in its own process, so each starts unprobed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <execinfo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selfprobe.h"
#include "unit.h"

#define NOINLINE __attribute__((noinline, noclone, used, visibility("default")))
#define KEEP(v) __asm__ volatile("" : "+r"(v) :: "memory")

static volatile long sink;

struct dpair { double x, y; };
struct pair { long a, b; };

NOINLINE long ur_fn(long x) { sink++; return x * 2 + 1; }
NOINLINE long ur_rec(long d) { sink++; if (d == 0) return 0; long r = ur_rec(d - 1); KEEP(r); return r + 1; }
NOINLINE struct pair ur_pair(long x) { sink++; return (struct pair){ x + 5, x - 5 }; }
NOINLINE double ur_dbl(double x) { sink++; return x * 0.75 + 2; }
NOINLINE struct dpair ur_dpair(double x) { sink++; return (struct dpair){ x + 0.5, x * -3 }; }
NOINLINE long double ur_ldbl(long double x) { sink++; return x * 7 / 3; }

/* BOTH(name) { body using MODE } — one test per UPROBE_MODE. */
#define BOTH(name)                                                  \
	static void name(const char *mode);                         \
	Test(uret, name##_int3, .timeout = 60) { name("int3"); }    \
	Test(uret, name##_auto, .timeout = 60) { name("auto"); }    \
	static void name(const char *mode)

static struct selfprobe_link *attach(const char *mode, const char *probe, selfprobe_handler_fn fn, void *data)
{
	cr_assert_eq(selfprobe_set_mode(mode), 0);
	struct selfprobe_link *l = selfprobe_attach(probe, fn, data);
	cr_assert_not_null(l, "attach %s (%s): %s", probe, mode, strerror(errno));
	return l;
}


/* Field NAME (a number) of the report entry whose spec is SPEC; -1 when
 * absent. */
static long field(const char *rep, const char *spec, const char *name)
{
	char key[256];
	snprintf(key, sizeof(key), "{\"spec\": \"%s\"", spec);
	const char *e = strstr(rep, key);
	if (!e)
		return -1;
	const char *end = strstr(e + 1, "{\"spec\": ");
	snprintf(key, sizeof(key), "\"%s\": ", name);
	const char *v = strstr(e, key);
	if (!v || (end && v > end))
		return -1;
	return strtol(v + strlen(key), NULL, 10);
}

/* ------------------------------------------------ sessions, every other */

#define N_CALLS 1000
#define MAGIC 0xC0DE000000000000ull

struct sess {
	long entries, returns, entry_is_return, bad_cookie, bad_retval, no_cookie;
	long seen[N_CALLS];
};

static int every_other(struct selfprobe_ctx *ctx, void *data)
{
	struct sess *s = data;
	uint64_t *ck = selfprobe_cookie(ctx);
	if (!ck) {
		s->no_cookie++;
		return 0;
	}
	if (!selfprobe_is_return(ctx)) {
		long x = (long)selfprobe_arg(ctx, 0);
		s->entries++;
		*ck = MAGIC | (uint64_t)x;
		return x & 1;       /* odd calls: no return call */
	}
	s->returns++;
	uint64_t c = *ck;
	long x = (long)(c & 0xffffffff);
	if ((c & ~0xffffffffull) != MAGIC || x < 0 || x >= N_CALLS) {
		s->bad_cookie++;
		return 0;
	}
	s->seen[x]++;
	if (selfprobe_retval(ctx) != (uint64_t)(x * 2 + 1))
		s->bad_retval++;
	return 0;
}

BOTH(session_skips_every_other_return)
{
	static struct sess s;
	struct selfprobe_link *l = attach(mode, "usession:ur_fn", every_other, &s);
	long bad = 0;
	for (long i = 0; i < N_CALLS; i++)
		bad += ur_fn(i) != i * 2 + 1;
	cr_assert_eq(bad, 0, "results changed");
	cr_assert_eq(s.no_cookie, 0, "selfprobe_cookie returned NULL for a session");
	cr_assert_eq(s.entries, N_CALLS);
	cr_assert_eq(s.returns, N_CALLS / 2, "return calls %ld", s.returns);
	cr_assert_eq(s.bad_cookie, 0, "cookies not read back");
	cr_assert_eq(s.bad_retval, 0, "selfprobe_retval != the result");
	for (long i = 0; i < N_CALLS; i++)
		cr_assert_eq(s.seen[i], !(i & 1), "call %ld: %ld return calls", i, s.seen[i]);
	char *rep = unit_report_json();
	cr_assert_eq(field(rep, "usession:ur_fn", "hits"), N_CALLS, "%s", rep);
	cr_assert_eq(field(rep, "usession:ur_fn", "returns"), N_CALLS / 2, "%s", rep);
	cr_assert_eq(field(rep, "usession:ur_fn", "lost"), 0, "%s", rep);
	free(rep);
	cr_assert_eq(selfprobe_detach(l), 0);
	long before = s.entries;
	ur_fn(2);
	cr_assert_eq(s.entries, before, "handler ran after detach");
}

/* --------------------------------------------------- cookies, recursion */

#define DEPTH 3000

struct rec {
	long entries, returns, bad, next_return;
};

static int rec_session(struct selfprobe_ctx *ctx, void *data)
{
	struct rec *r = data;
	uint64_t *ck = selfprobe_cookie(ctx);
	if (!selfprobe_is_return(ctx)) {
		r->entries++;
		*ck = MAGIC | selfprobe_arg(ctx, 0);
		return 0;
	}
	r->returns++;
	long d = (long)(*ck & 0xffffffff);
	/* innermost first: depth 0, 1, 2 …; ur_rec(d) returns d */
	if ((*ck & ~0xffffffffull) != MAGIC || d != r->next_return || selfprobe_retval(ctx) != (uint64_t)d)
		r->bad++;
	r->next_return = d + 1;
	return 0;
}

BOTH(session_cookies_through_recursion)
{
	static struct rec r;
	struct selfprobe_link *l = attach(mode, "usession:ur_rec", rec_session, &r);
	for (int k = 0; k < 3; k++) {
		r.next_return = 0;
		cr_assert_eq(ur_rec(DEPTH), DEPTH);
	}
	cr_assert_eq(r.entries, 3 * (DEPTH + 1));
	cr_assert_eq(r.returns, 3 * (DEPTH + 1));
	cr_assert_eq(r.bad, 0, "%ld returns with a wrong cookie, order or value", r.bad);
	selfprobe_detach(l);
}

/* ------------------------------------------------ writable return value */

static long set_rax_at_entry;

static int set_rax(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	if (!selfprobe_is_return(ctx))
		set_rax_at_entry++;   /* no asserts in a handler: they longjmp */
	selfprobe_regs(ctx)->rax = 777;
	return 0;
}

BOTH(return_handler_changes_the_result)
{
	struct selfprobe_link *l = attach(mode, "uretprobe:ur_fn", set_rax, NULL);
	for (long i = 0; i < 100; i++)
		cr_assert_eq(ur_fn(i), 777);
	struct selfprobe_link *l2 = attach(mode, "uretprobe:ur_pair", set_rax, NULL);
	struct pair p = ur_pair(10);
	cr_assert_eq(p.a, 777);
	cr_assert_eq(p.b, 5, "rdx changed");
	selfprobe_detach(l);
	selfprobe_detach(l2);
	cr_assert_eq(set_rax_at_entry, 0, "a uretprobe handler ran at entry");
	cr_assert_eq(ur_fn(4), 9);
}

/* -------------------------------------------- vector and x87 state kept */

static long fp_handler_calls;

static int clobber_fp(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx;
	(void)data;
	volatile double d = 1.0;
	volatile long double ld = 3.0L;
	for (int i = 0; i < 50; i++) {
		d = d * 1.0001 + 0.5;
		ld = ld / 1.7L + d;
	}
	char buf[64];
	snprintf(buf, sizeof(buf), "%f %Lf", d, ld);
	sink += buf[0];
	fp_handler_calls++;
	return 0;
}

BOTH(return_handler_keeps_fp_results)
{
	struct selfprobe_link *l[3] = {
		attach(mode, "uretprobe:ur_dbl", clobber_fp, NULL),
		attach(mode, "uretprobe:ur_dpair", clobber_fp, NULL),
		attach(mode, "usession:ur_ldbl", clobber_fp, NULL),
	};
	for (int i = 0; i < 200; i++) {
		volatile double x = i + 0.25;
		volatile long double xl = i + 0.125L;
		double d = ur_dbl(x);
		cr_assert_eq(d, x * 0.75 + 2, "double %d", i);
		struct dpair p = ur_dpair(x);
		cr_assert(p.x == x + 0.5 && p.y == x * -3, "dpair %d", i);
		long double r = ur_ldbl(xl), want = xl * 7 / 3;
		cr_assert(memcmp(&r, &want, 10) == 0, "long double %d", i);
	}
	cr_assert_eq(fp_handler_calls, 200 * 4);   /* the session: entry + return */
	for (int i = 0; i < 3; i++)
		selfprobe_detach(l[i]);
}

/* ------------------------------------------------- hits inside handlers */

static long reentrant_calls;

static int call_probed(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	reentrant_calls++;
	/* a probed call from the handler: counted, no handler, missed */
	long r = ur_fn(selfprobe_is_return(ctx) ? 1 : 2);
	if (r != (selfprobe_is_return(ctx) ? 3 : 5))
		sink = -1000000;
	return 0;
}

BOTH(hit_inside_a_return_handler_is_missed)
{
	struct selfprobe_link *l = attach(mode, "usession:ur_fn", call_probed, NULL);
	for (long i = 0; i < 100; i++)
		cr_assert_eq(ur_fn(i), i * 2 + 1);
	cr_assert_eq(reentrant_calls, 200, "handler calls %ld (nested hits must not run it)", reentrant_calls);
	cr_assert_geq(sink, 0, "a call from the handler returned a wrong value");
	char *rep = unit_report_json();
	/* entries: 100 outer + 200 from the handlers; returns: the outer ones */
	cr_assert_eq(field(rep, "usession:ur_fn", "hits"), 300, "%s", rep);
	cr_assert_eq(field(rep, "usession:ur_fn", "missed"), 200, "%s", rep);
	cr_assert_eq(field(rep, "usession:ur_fn", "returns"), 100, "%s", rep);
	free(rep);
	selfprobe_detach(l);
}

/* ------------------------------------------- backtrace() from a handler */

struct bt {
	uintptr_t ret_addr;     /* the probed call's real return address */
	long calls, found, frames;
};

static int bt_session(struct selfprobe_ctx *ctx, void *data)
{
	struct bt *b = data;
	if (!selfprobe_is_return(ctx)) {
		*selfprobe_cookie(ctx) = *(uint64_t *)selfprobe_regs(ctx)->rsp;
		return 0;
	}
	void *ips[64];
	int n = backtrace(ips, 64);
	b->calls++;
	b->frames += n;
	b->ret_addr = *selfprobe_cookie(ctx);
	for (int i = 0; i < n; i++)
		if ((uintptr_t)ips[i] == b->ret_addr) {
			b->found++;
			break;
		}
	return 0;
}

NOINLINE long bt_caller(long i)
{
	long r = ur_fn(i);
	KEEP(r);
	return r;
}

BOTH(backtrace_inside_a_return_handler)
{
	static struct bt b;
	struct selfprobe_link *l = attach(mode, "usession:ur_fn", bt_session, &b);
	struct selfprobe_link *l2 = attach(mode, "uretprobe:bt_caller", NULL, NULL);
	for (long i = 0; i < 50; i++)
		cr_assert_eq(bt_caller(i), i * 2 + 1);
	cr_assert_eq(b.calls, 50);
	cr_assert_gt(b.frames, 50 * 3, "backtrace found only %ld frames in 50 calls", b.frames);
	cr_assert_eq(b.found, 50, "the caller's return address %#lx was in %ld of 50 backtraces", b.ret_addr,
		     b.found);
	char *rep = unit_report_json();
	cr_assert_eq(field(rep, "usession:ur_fn", "returns"), 50, "%s", rep);
	cr_assert_eq(field(rep, "uretprobe:bt_caller", "hits"), 50, "%s", rep);
	cr_assert_eq(field(rep, "uretprobe:bt_caller", "lost"), 0, "%s", rep);
	free(rep);
	selfprobe_detach(l);
	selfprobe_detach(l2);
}

/* ---------------------------------------------------------- latency */

BOTH(latency_count_equals_hits)
{
	cr_assert_eq(selfprobe_set_mode(mode), 0);
	cr_assert_eq(selfprobe_attach_spec("uretprobe:ur_rec=latency"), 0);
	for (int k = 0; k < 10; k++)
		cr_assert_eq(ur_rec(100), 100);
	char *rep = unit_report_json();
	const char *spec = "uretprobe:ur_rec=latency";
	cr_assert_eq(field(rep, spec, "hits"), 1010, "%s", rep);
	cr_assert_eq(field(rep, spec, "count"), 1010, "%s", rep);
	cr_assert_eq(field(rep, spec, "lost"), 0, "%s", rep);
	long mn = field(rep, spec, "min"), avg = field(rep, spec, "avg"), mx = field(rep, spec, "max");
	cr_assert(mn >= 0 && mn <= avg && avg <= mx, "min %ld avg %ld max %ld", mn, avg, mx);
	free(rep);
}
