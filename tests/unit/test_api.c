/* The public C API (include/selfprobe.h) as a program that instruments
 * itself uses it:
 *   - attach and detach from several threads while others hit the probed
 *     functions: exact counts while attached, and once selfprobe_detach has
 *     returned the handler never runs again and its data may be freed;
 *   - the documented error conventions (NULL + errno, negative errno, a bad
 *     spec item failing alone);
 *   - the exported symbols of the real build/lib/libselfprobe.so: exactly
 *     the names runtime/selfprobe.map makes global, nothing of Zydis or
 *     libelf, no versioned definitions. */
#include <criterion/criterion.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "selfprobe.h"

#define NOINLINE __attribute__((noinline, used, visibility("default")))

static volatile unsigned sink;

/* Two hot sites: api_hot keeps one handler for the whole test while others
 * come and go on it; api_hot2 has only short-lived handlers, so it is armed
 * and disarmed again and again under load. */
NOINLINE int api_hot(int x)
{
	sink += x;
	return x * 3 + 1;
}

NOINLINE int api_hot2(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 5 - 2;
}

NOINLINE int api_spec_a(int x)
{
	sink += x;
	return x + 11;
}

NOINLINE int api_spec_b(int x)
{
	__asm__ volatile("" ::: "memory");
	return x ^ 0x55;
}

/* ------------------------------------------------------------ handlers */

#define MAGIC 0x5e1f9b0beULL

/* A handler's data, on the heap: freed as soon as detach has returned.
 * The flag sits away from the start of the block, where free() writes its
 * own bookkeeping, so that a late handler still reads it. */
struct hdata {
	_Atomic long calls;
	char pad[48];
	_Atomic int freed;
	unsigned long long magic;
};

static _Atomic long late_calls;       /* a handler ran on freed or detached data */
static _Atomic long thread_errors;    /* an assertion that failed outside the test thread */
static _Atomic long retired_calls;    /* handler calls of every retired data block */

/* Busy-wait US microseconds (sched_yield or sleeping gives the CPU away
 * for whole time slices when the hammers keep both cores busy). */
static void spin_us(long us)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static int data_handler(struct selfprobe_ctx *ctx, void *data)
{
	struct hdata *d = data;
	(void)ctx;
	if (atomic_load(&d->freed) || d->magic != MAGIC)
		atomic_fetch_add(&late_calls, 1);
	atomic_fetch_add(&d->calls, 1);
	return 0;
}

static struct hdata *hdata_new(void)
{
	struct hdata *d = calloc(1, sizeof(*d));
	cr_assert_not_null(d);
	d->magic = MAGIC;
	return d;
}

/* After selfprobe_detach returned: nothing may run the handler any more.
 * Watch the count for a moment, then mark the data dead and free it. */
static void hdata_retire(struct hdata *d)
{
	long before = atomic_load(&d->calls);
	spin_us(30);
	if (atomic_load(&d->calls) != before)
		atomic_fetch_add(&late_calls, 1);
	atomic_fetch_add(&retired_calls, before);
	atomic_store(&d->freed, 1);
	d->magic = 0;
	free(d);
}

/* ------------------------------------------------------------ threads */

#define HAMMERS 4
#define CHURNERS 2

static _Atomic int stop;

struct hammer {
	pthread_t t;
	long calls;               /* api_hot calls made */
	long exact;               /* if > 0: make exactly this many calls of each, then return */
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;
	h->calls = 0;
	for (long i = 0; h->exact ? i < h->exact : !atomic_load(&stop); i++) {
		if (api_hot((int)i) != (int)i * 3 + 1 || api_hot2((int)i) != (int)i * 5 - 2)
			atomic_fetch_add(&thread_errors, 1);
		h->calls++;
	}
	return NULL;
}

struct churner {
	pthread_t t;
	const char *probe;
	int rounds;
	long attached;
};

static void *churner(void *arg)
{
	struct churner *c = arg;
	for (int r = 0; r < c->rounds; r++) {
		struct hdata *d = calloc(1, sizeof(*d));
		if (!d) {
			atomic_fetch_add(&thread_errors, 1);
			break;
		}
		d->magic = MAGIC;
		struct selfprobe_link *l = selfprobe_attach(c->probe, data_handler, d);
		if (!l) {
			atomic_fetch_add(&thread_errors, 1);
			free(d);
			continue;
		}
		c->attached++;
		spin_us((r % 7) * 40);   /* let the hammers hit it a while */
		if (selfprobe_detach(l) != 0)
			atomic_fetch_add(&thread_errors, 1);
		hdata_retire(d);
	}
	return NULL;
}

/* Exactly N calls of each hot function from each of HAMMERS threads. */
static void exact_calls(long n)
{
	struct hammer h[HAMMERS];
	for (int i = 0; i < HAMMERS; i++) {
		h[i].exact = n;
		cr_assert_eq(pthread_create(&h[i].t, NULL, hammer, &h[i]), 0);
	}
	for (int i = 0; i < HAMMERS; i++)
		pthread_join(h[i].t, NULL);
}

static void churn_under_load(const char *mode)
{
	cr_assert_eq(selfprobe_set_mode(mode), 0);
	atomic_store(&late_calls, 0);
	atomic_store(&thread_errors, 0);
	atomic_store(&retired_calls, 0);
	long churn_calls = 0;

	/* a handler that stays for the whole test, on the site others churn */
	struct hdata *keep = hdata_new();
	struct selfprobe_link *kl = selfprobe_attach("uprobe:api_hot", data_handler, keep);
	cr_assert_not_null(kl, "attach: %s", strerror(errno));
	long total = 0;

	for (int round = 0; round < 4; round++) {
		/* churn: hammers hit both sites while handlers come and go */
		atomic_store(&stop, 0);
		struct hammer h[HAMMERS] = { 0 };
		for (int i = 0; i < HAMMERS; i++)
			cr_assert_eq(pthread_create(&h[i].t, NULL, hammer, &h[i]), 0);
		struct churner c[CHURNERS] = {
			{ .probe = "uprobe:api_hot", .rounds = 60 },
			{ .probe = "uprobe:api_hot2", .rounds = 60 },
		};
		long retired_before = atomic_load(&retired_calls);
		for (int i = 0; i < CHURNERS; i++)
			cr_assert_eq(pthread_create(&c[i].t, NULL, churner, &c[i]), 0);
		for (int i = 0; i < CHURNERS; i++)
			pthread_join(c[i].t, NULL);
		churn_calls += atomic_load(&retired_calls) - retired_before;
		atomic_store(&stop, 1);
		for (int i = 0; i < HAMMERS; i++) {
			pthread_join(h[i].t, NULL);
			total += h[i].calls;
		}
		cr_assert_eq(atomic_load(&thread_errors), 0, "round %d: wrong results or failed attach/detach", round);
		cr_assert_eq(atomic_load(&late_calls), 0, "round %d: a handler ran after its detach returned", round);
		for (int i = 0; i < CHURNERS; i++)
			cr_assert_eq(c[i].attached, c[i].rounds);
		/* the resident handler saw every call, whatever came and went */
		cr_assert_eq(atomic_load(&keep->calls), total,
			     "round %d: resident handler %ld calls, the hammers made %ld", round,
			     atomic_load(&keep->calls), total);

		/* quiescent: fresh handlers on both sites, exact counts */
		struct hdata *a = hdata_new(), *b = hdata_new(), *b2 = hdata_new();
		struct selfprobe_link *la = selfprobe_attach("uprobe:api_hot", data_handler, a);
		struct selfprobe_link *lb = selfprobe_attach("uprobe:api_hot2", data_handler, b);
		struct selfprobe_link *lb2 = selfprobe_attach("uprobe:api_hot2", data_handler, b2);
		cr_assert(la && lb && lb2, "attach: %s", strerror(errno));
		long n = 5000 + round * 1000;
		exact_calls(n);
		total += HAMMERS * n;
		cr_assert_eq(atomic_load(&a->calls), HAMMERS * n, "round %d: %ld calls, want %ld", round,
			     atomic_load(&a->calls), HAMMERS * n);
		cr_assert_eq(atomic_load(&b->calls), HAMMERS * n);
		cr_assert_eq(atomic_load(&b2->calls), HAMMERS * n);
		cr_assert_eq(atomic_load(&keep->calls), total);
		cr_assert_eq(selfprobe_detach(la), 0);
		cr_assert_eq(selfprobe_detach(lb), 0);
		exact_calls(100);        /* only b2 and the resident one are left */
		total += HAMMERS * 100;
		cr_assert_eq(atomic_load(&a->calls), HAMMERS * n, "a handler ran after detach");
		cr_assert_eq(atomic_load(&b->calls), HAMMERS * n, "a handler ran after detach");
		cr_assert_eq(atomic_load(&b2->calls), HAMMERS * n + HAMMERS * 100);
		cr_assert_eq(selfprobe_detach(lb2), 0);
		hdata_retire(a);
		hdata_retire(b);
		hdata_retire(b2);
		cr_assert_eq(atomic_load(&late_calls), 0);
	}
	cr_assert_eq(selfprobe_detach(kl), 0);
	long final = atomic_load(&keep->calls);
	exact_calls(10);
	cr_assert_eq(atomic_load(&keep->calls), final, "the resident handler ran after detach");
	hdata_retire(keep);
	cr_assert_eq(atomic_load(&late_calls), 0);
	/* the churning handlers did run while the hammers hit them: the test
	 * detached handlers that were in use, not idle ones */
	cr_assert_gt(churn_calls, 0, "no churned handler was ever called");
	cr_log_info("%s: %ld calls of handlers that were detached under load", mode, churn_calls);
}

Test(api, attach_detach_from_threads_under_load_int3, .timeout = 50)
{
	churn_under_load("int3");
}

Test(api, attach_detach_from_threads_under_load_auto, .timeout = 50)
{
	churn_under_load("auto");
}

/* ------------------------------------------------------------ errors */

static int nop_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	return 0;
}

Test(api, attach_errors_return_null_and_set_errno)
{
	errno = 0;
	cr_assert_null(selfprobe_attach("uprobe:api_no_such_function_xyz", nop_handler, NULL));
	cr_assert_eq(errno, ENOENT, "unknown symbol: errno %d (%s)", errno, strerror(errno));
	errno = 0;
	cr_assert_null(selfprobe_attach("uprobe:api_nothing_matches_*", nop_handler, NULL));
	cr_assert_eq(errno, ENOENT, "empty glob: errno %d (%s)", errno, strerror(errno));
	errno = 0;
	cr_assert_null(selfprobe_attach("not a probe", nop_handler, NULL));
	cr_assert_eq(errno, EINVAL, "malformed probe: errno %d", errno);
	errno = 0;
	cr_assert_null(selfprobe_attach("uprobe:api_hot;uprobe:api_hot2", nop_handler, NULL));
	cr_assert_eq(errno, EINVAL, "two probes: errno %d", errno);
	errno = 0;
	cr_assert_null(selfprobe_attach(NULL, nop_handler, NULL));
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(selfprobe_detach(NULL), -EINVAL);

	/* a link detaches once; the second time is an error, not a crash */
	struct selfprobe_link *l = selfprobe_attach("uprobe:api_hot", nop_handler, NULL);
	cr_assert_not_null(l, "attach: %s", strerror(errno));
	cr_assert_eq(selfprobe_detach(l), 0);
	cr_assert_lt(selfprobe_detach(l), 0);
	cr_assert_eq(api_hot(2), 7);
}

static char *report_json(void)
{
	char path[] = "/tmp/sp_api_report_XXXXXX.json";
	int fd = mkstemps(path, 5);
	cr_assert_geq(fd, 0);
	cr_assert_eq(selfprobe_write_report_fd(fd, true), 0);
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	cr_assert_eq(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	unlink(path);
	return buf;
}

/* The report line (one per entry) that holds NEEDLE, copied, or NULL. */
static char *entry_line(const char *report, const char *needle)
{
	const char *p = strstr(report, needle);
	if (!p)
		return NULL;
	const char *b = p, *e = p;
	while (b > report && b[-1] != '\n')
		b--;
	while (*e && *e != '\n')
		e++;
	return strndup(b, (size_t)(e - b));
}

/* Probes attached on demand, each time with another handler function (as a
 * program does with handlers of its own, or a plugin reloaded at a new
 * address): the registry keeps one record of the probe, not one per
 * handler, and that record sums every attachment's hits (issue 16 item 6:
 * it grew by a record per distinct handler). */
NOINLINE int api_churned(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 21;
}

static atomic_int churn_calls[8];
#define CHURN_HANDLER(i) \
	static int churn_##i(struct selfprobe_ctx *ctx, void *data) \
	{ (void)ctx, (void)data; atomic_fetch_add(&churn_calls[i], 1); return 0; }
CHURN_HANDLER(0) CHURN_HANDLER(1) CHURN_HANDLER(2) CHURN_HANDLER(3)
CHURN_HANDLER(4) CHURN_HANDLER(5) CHURN_HANDLER(6) CHURN_HANDLER(7)
static const selfprobe_handler_fn churn_fns[8] = { churn_0, churn_1, churn_2, churn_3,
						   churn_4, churn_5, churn_6, churn_7 };

Test(api, a_probe_attached_again_with_another_handler_keeps_one_record)
{
	for (int round = 0; round < 32; round++) {
		struct selfprobe_link *l = selfprobe_attach("uprobe:api_churned", churn_fns[round % 8], NULL);
		cr_assert_not_null(l, "round %d", round);
		cr_assert_eq(api_churned(round), round + 21);
		cr_assert_eq(selfprobe_detach(l), 0);
	}
	for (int i = 0; i < 8; i++)
		cr_expect_eq(atomic_load(&churn_calls[i]), 4, "handler %d ran %d times", i, atomic_load(&churn_calls[i]));
	char *rep = report_json();
	int entries = 0;
	for (const char *p = rep; (p = strstr(p, "\"symbol\": \"api_churned\"")); p++)
		entries++;
	cr_expect_eq(entries, 1, "%d report entries for uprobe:api_churned (one per handler?)", entries);
	char *e = entry_line(rep, "\"symbol\": \"api_churned\"");
	cr_assert_not_null(e, "%s", rep);
	cr_expect(strstr(e, "\"hits\": 32,"), "%s", e);
	free(e);
	free(rep);
}

Test(api, attach_spec_fails_the_bad_items_only)
{
	cr_assert_eq(selfprobe_attach_spec(NULL), -EINVAL);
	int rc = selfprobe_attach_spec("uprobe:api_spec_a;uprobez:api_spec_a;"
				       "uprobe:api_no_such_function_xyz;uprobe:api_spec_b=count");
	cr_assert_eq(rc, -EINVAL);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(api_spec_a(i), i + 11);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(api_spec_b(i), i ^ 0x55);
	char *rep = report_json();
	char *a = entry_line(rep, "\"symbol\": \"api_spec_a\"");
	char *b = entry_line(rep, "\"symbol\": \"api_spec_b\"");
	cr_assert_not_null(a, "%s", rep);
	cr_assert_not_null(b, "%s", rep);
	cr_assert(strstr(a, "\"hits\": 3,"), "%s", a);
	cr_assert(strstr(b, "\"hits\": 5,"), "%s", b);
	cr_assert(strstr(rep, "{\"spec\": \"uprobez:api_spec_a\", \"message\": "), "%s", rep);
	cr_assert(strstr(rep, "{\"spec\": \"uprobe:api_no_such_function_xyz\", \"message\": "), "%s", rep);
	free(a);
	free(b);
	free(rep);

	/* every item good: 0 */
	cr_assert_eq(selfprobe_attach_spec("uprobe:api_spec_b"), 0);
}

/* ------------------------------------------------------------ exports */

struct names {
	char **v;
	size_t n;
};

static void names_add(struct names *s, const char *name, size_t len)
{
	s->v = realloc(s->v, (s->n + 1) * sizeof(*s->v));
	cr_assert_not_null(s->v);
	s->v[s->n++] = strndup(name, len);
}

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static bool names_has(const struct names *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return true;
	return false;
}

/* The "global:" patterns of the version script at PATH. */
static struct names map_globals(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	char text[16384];
	size_t len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	cr_assert_lt(len, sizeof(text) - 1, "%s is larger than the test expects", path);
	text[len] = 0;
	/* comments out */
	for (char *c; (c = strstr(text, "/*"));) {
		char *e = strstr(c + 2, "*/");
		cr_assert_not_null(e, "unterminated comment in %s", path);
		memset(c, ' ', (size_t)(e + 2 - c));
	}
	char *g = strstr(text, "global:");
	char *l = strstr(text, "local:");
	cr_assert(g && l && g < l, "%s: no global: ... local: section", path);
	struct names out = { 0 };
	for (char *p = g + strlen("global:"); p < l;) {
		p += strspn(p, " \t\r\n;");
		size_t n = strcspn(p, " \t\r\n;");
		if (p + n > l)
			n = (size_t)(l - p);
		if (n)
			names_add(&out, p, n);
		p += n;
	}
	cr_assert_gt(out.n, 0);
	return out;
}

static bool matches_any(const struct names *patterns, const char *name)
{
	for (size_t i = 0; i < patterns->n; i++)
		if (fnmatch(patterns->v[i], name, 0) == 0)
			return true;
	return false;
}

Test(api, exported_symbols_are_exactly_the_version_script)
{
	struct names globals = map_globals(TEST_SRC_DIR "/runtime/selfprobe.map");
	cr_assert(names_has(&globals, "selfprobe_*"), "the map does not export selfprobe_*");

	const char *lib = TEST_LIB_DIR "/libselfprobe.so";
	cr_assert_neq(elf_version(EV_CURRENT), EV_NONE);
	int fd = open(lib, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", lib, strerror(errno));
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	cr_assert_not_null(e, "%s: %s", lib, elf_errmsg(-1));

	Elf_Scn *dynsym = NULL, *versym = NULL, *verdef = NULL;
	for (Elf_Scn *s = elf_nextscn(e, NULL); s; s = elf_nextscn(e, s)) {
		GElf_Shdr sh;
		cr_assert_not_null(gelf_getshdr(s, &sh));
		if (sh.sh_type == SHT_DYNSYM)
			dynsym = s;
		else if (sh.sh_type == SHT_GNU_versym)
			versym = s;
		else if (sh.sh_type == SHT_GNU_verdef)
			verdef = s;
	}
	cr_assert_not_null(dynsym, "%s has no .dynsym", lib);

	/* Versioned definitions would not bind the application's versioned
	 * references: .gnu.version_d absent, or holding only the base. */
	if (verdef) {
		GElf_Shdr sh;
		gelf_getshdr(verdef, &sh);
		Elf_Data *d = elf_getdata(verdef, NULL);
		cr_assert_not_null(d);
		GElf_Verdef vd;
		cr_assert_not_null(gelf_getverdef(d, 0, &vd));
		cr_assert(vd.vd_flags & VER_FLG_BASE, "the first version definition is not the base");
		cr_assert_eq(vd.vd_next, 0, "%s defines symbol versions besides the base", lib);
	}

	GElf_Shdr sh;
	gelf_getshdr(dynsym, &sh);
	Elf_Data *syms = elf_getdata(dynsym, NULL);
	Elf_Data *vers = versym ? elf_getdata(versym, NULL) : NULL;
	size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
	struct names defined = { 0 };
	for (size_t i = 1; i < n; i++) {
		GElf_Sym sym;
		cr_assert_not_null(gelf_getsym(syms, (int)i, &sym));
		if (sym.st_shndx == SHN_UNDEF)
			continue;
		const char *name = elf_strptr(e, sh.sh_link, sym.st_name);
		cr_assert_not_null(name);
		if (!*name || GELF_ST_TYPE(sym.st_info) == STT_SECTION)
			continue;
		names_add(&defined, name, strlen(name));
		cr_assert(matches_any(&globals, name), "%s exports '%s', which selfprobe.map does not list",
			  lib, name);
		cr_assert(strncasecmp(name, "zydis", 5) != 0 && strncmp(name, "elf_", 4) != 0 &&
			  strncmp(name, "gelf_", 5) != 0 && strncmp(name, "elf32_", 6) != 0 &&
			  strncmp(name, "elf64_", 6) != 0 && strncmp(name, "sp_", 3) != 0,
			  "%s exports a dependency's or an internal symbol: '%s'", lib, name);
		if (vers) {
			GElf_Versym v;
			cr_assert_not_null(gelf_getversym(vers, (int)i, &v));
			cr_assert_leq(v & 0x7fff, VER_NDX_GLOBAL, "'%s' is defined with a version (%u)", name,
				      (unsigned)(v & 0x7fff));
		}
	}
	elf_end(e);
	close(fd);

	/* every name the map lists is there; every glob matches something */
	for (size_t i = 0; i < globals.n; i++) {
		const char *p = globals.v[i];
		if (strpbrk(p, "*?[")) {
			bool any = false;
			for (size_t j = 0; j < defined.n && !any; j++)
				any = fnmatch(p, defined.v[j], 0) == 0;
			cr_assert(any, "nothing exported matches '%s'", p);
		} else {
			cr_assert(names_has(&defined, p), "%s does not export '%s' (listed in selfprobe.map)", lib, p);
		}
	}
	/* the design's API, by name */
	static const char *const api[] = {
		"selfprobe_attach", "selfprobe_detach", "selfprobe_attach_spec", "selfprobe_regs",
		"selfprobe_arg", "selfprobe_retval", "selfprobe_is_return", "selfprobe_cookie",
		"selfprobe_usdt_arg", "selfprobe_backtrace",
	};
	for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++)
		cr_assert(names_has(&defined, api[i]), "%s does not export %s", lib, api[i]);
	names_free(&defined);
	names_free(&globals);
}
