/* trace — see trace.h. */
#include "trace.h"
#include "dispatch.h"
#include "fdid.h"
#include "golang_args.h"
#include "probe.h"
#include "timeline.h"
#include "tstate.h"
#include "usdt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUF_SIZE (16 << 10)

struct tbuf {
	size_t len;
	struct tbuf *_Atomic next;      /* every buffer, for the final flush */
	_Atomic int busy;               /* the owner is writing into it */
	char data[BUF_SIZE];
};

static __thread struct tbuf *mine __attribute__((tls_model("initial-exec")));
static struct tbuf *_Atomic all;
/* The copy of stderr the lines go to, and its identity: a program that
 * closes every descriptor (a daemon's closefrom) may open a file of its own
 * at that number.  Lines then go nowhere rather than into its file, nor to
 * its stderr of now (redirected, perhaps: not where trace lines were
 * promised); counted, for the report.  Written once, before any probe
 * traces; read by every thread's flush. */
static struct sp_fdout out = SP_FDOUT_NONE;   /* lost: lines */
static pthread_key_t key;

/* B's lines dropped: counted (a line per newline). */
static void drop(struct tbuf *b)
{
	uint64_t n = 0;
	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\n';
	atomic_fetch_add(&out.lost, n);
	b->len = 0;
}

static void flush(struct tbuf *b)
{
	if (b->len && !sp_fdout_ours(&out)) {
		drop(b);
		return;
	}
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = write(out.id.fd, b->data + off, b->len - off);
		if (n <= 0 && errno != EINTR)
			break;
		if (n > 0)
			off += (size_t)n;
	}
	b->len = 0;
}

static void thread_gone(void *v)
{
	struct tbuf *b = v;
	if (b)
		flush(b);
	/* the buffer stays on the list (reused by nobody): one page per
	 * thread that ever traced, flushed empty */
	mine = NULL;
}

int sp_trace_prepare(void)
{
	if (out.id.fd >= 0)
		return 0;
	int fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
	if (fd < 0)
		return -errno;
	if (!sp_fdid_remember(&out.id, fd)) {
		close(fd);
		return -EBADF;
	}
	return -pthread_key_create(&key, thread_gone);
}

static struct tbuf *buffer(void)
{
	if (mine)
		return mine;
	void *p = mmap(NULL, sizeof(struct tbuf), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct tbuf *b = p;
	b->next = atomic_load(&all);
	while (!atomic_compare_exchange_weak(&all, (struct tbuf **)&b->next, b))
		;
	mine = b;
	pthread_setspecific(key, b);
	return b;
}

/* ---- formatting without stdio ---- */

struct line {
	char s[512];
	size_t n;
};

static void put(struct line *l, const char *s)
{
	while (*s && l->n < sizeof(l->s) - 1)
		l->s[l->n++] = *s++;
}

static void put_u(struct line *l, uint64_t v, int base)
{
	char tmp[24];
	int i = 0;
	do {
		tmp[i++] = "0123456789abcdef"[v % (unsigned)base];
		v /= (unsigned)base;
	} while (v);
	if (base == 16)
		put(l, "0x");
	while (i && l->n < sizeof(l->s) - 1)
		l->s[l->n++] = tmp[--i];
}

static void put_i(struct line *l, int64_t v)
{
	if (v < 0) {
		put(l, "-");
		put_u(l, (uint64_t)0 - (uint64_t)v, 10);
	} else
		put_u(l, (uint64_t)v, 10);
}

/* A double as printf's %g would (6 significant digits), without libc. */
static void put_f(struct line *l, double d)
{
	if (d != d) {
		put(l, "nan");
		return;
	}
	if (d < 0 || (d == 0 && 1 / d < 0)) {
		put(l, "-");
		d = -d;
	}
	if (d > 1.7976931348623157e308) {
		put(l, "inf");
		return;
	}
	int exp10 = 0;
	if (d != 0) {
		while (d >= 10) {
			d /= 10;
			exp10++;
		}
		while (d < 1) {
			d *= 10;
			exp10--;
		}
	}
	/* d in [1, 10): six significant digits, rounded */
	uint64_t digits = (uint64_t)(d * 100000 + 0.5);
	if (digits >= 1000000) {
		digits /= 10;
		exp10++;
	}
	char buf[8];
	for (int i = 5; i >= 0; i--, digits /= 10)
		buf[i] = (char)('0' + digits % 10);
	int last = 5;
	while (last > 0 && buf[last] == '0')
		last--;
	if (exp10 < -4 || exp10 >= 6) {                /* 1.5e+07 */
		char m[10] = { buf[0] };
		int k = 1;
		if (last > 0) {
			m[k++] = '.';
			for (int i = 1; i <= last; i++)
				m[k++] = buf[i];
		}
		m[k] = 0;
		put(l, m);
		put(l, exp10 < 0 ? "e-" : "e+");
		uint64_t e = (uint64_t)(exp10 < 0 ? -exp10 : exp10);
		if (e < 10)
			put(l, "0");
		put_u(l, e, 10);
		return;
	}
	char out[32];
	int k = 0;
	if (exp10 < 0) {                               /* 0.00123 */
		out[k++] = '0';
		out[k++] = '.';
		for (int i = -1; i > exp10; i--)
			out[k++] = '0';
		for (int i = 0; i <= last; i++)
			out[k++] = buf[i];
	} else {                                       /* 123.456, 15 */
		for (int i = 0; i <= exp10; i++)
			out[k++] = i <= 5 ? buf[i] : '0';
		if (last > exp10) {
			out[k++] = '.';
			for (int i = exp10 + 1; i <= last; i++)
				out[k++] = buf[i];
		}
	}
	out[k] = 0;
	put(l, out);
}

static void trace_line(struct selfprobe_ctx *ctx);

int sp_trace_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	if (sp_timeline_on()) {   /* events for the timeline instead of lines */
		sp_timeline_hit(ctx);
		return 0;
	}
	sp_tls.runtime++;   /* gettid, mmap, write: ours, not the application's */
	trace_line(ctx);
	sp_tls.runtime--;
	return 0;
}

static void trace_line(struct selfprobe_ctx *ctx)
{
	struct sp_probe *p = ctx->probe;
	struct line l = { .n = 0 };
	put(&l, "[");
	put_u(&l, (uint64_t)syscall(SYS_gettid), 10);
	put(&l, "] ");
	put(&l, p->label);
	if (ctx->is_return) {
		put(&l, " = ");
		put_u(&l, ctx->regs->rax, 16);
	} else if (p->kind == SP_KIND_USDT) {
		put(&l, "(");
		for (int i = 0; i < p->usdt_nargs; i++) {
			if (i)
				put(&l, ", ");
			int64_t v;
			double d;
			if (selfprobe_usdt_arg_double(ctx, i, &d) == 0)
				put_f(&l, d);
			else if (selfprobe_usdt_arg(ctx, i, &v) == 0)
				put_i(&l, v);
			else
				put(&l, "?");
		}
		put(&l, ")");
	} else {
		put(&l, "(");
		for (int i = 0; i < 6; i++) {
			if (i)
				put(&l, ", ");
			put_u(&l, sp_go_or_c_arg(ctx, i), 16);   /* a Go function's: Go's ABI */
		}
		put(&l, ")");
	}
	put(&l, "\n");
	struct tbuf *b = buffer();
	if (!b || out.id.fd < 0)
		return;
	if (atomic_load(&out.gone)) {   /* not kept for a flush that would drop it */
		atomic_fetch_add(&out.lost, 1);
		return;
	}
	atomic_store(&b->busy, 1);
	if (b->len + l.n > BUF_SIZE)
		flush(b);
	for (size_t i = 0; i < l.n; i++)
		b->data[b->len + i] = l.s[i];
	b->len += l.n;
	atomic_store(&b->busy, 0);
}

void sp_trace_flush_all(void)
{
	for (struct tbuf *b = atomic_load(&all); b; b = atomic_load(&b->next))
		if (!atomic_load(&b->busy))   /* a thread mid-line keeps its buffer */
			flush(b);
}

uint64_t sp_trace_lost(void)
{
	return atomic_load(&out.lost);
}
