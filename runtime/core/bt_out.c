/* bt_out — printf's formats and maps in bpftrace 0.17's text format (see
 * bt.h).  The map layout follows bpftrace's output.cpp and the order its
 * print_map gives: integer maps by value, string maps by key, hist/lhist
 * by their total count, avg/stats by their average; equal values (an
 * order bpftrace leaves unspecified) by key, so output is deterministic.
 * Bars and labels are computed as bpftrace does, with the same float
 * arithmetic, so output compares byte for byte.
 */
#include "bt.h"
#include "heap.h"
#include "sort.h"
#include "bt_shard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- buffers */

void bt_buf_put(struct bt_buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		if (b->fixed) {   /* the handler's array: cut, never grown */
			n = b->cap > b->n + 1 ? b->cap - b->n - 1 : 0;
		} else {
			size_t nc = b->cap ? b->cap : 256;
			while (nc < b->n + n + 1)
				nc *= 2;
			char *p = sp_realloc(b->p, nc);
			if (!p)
				return;
			b->p = p;
			b->cap = nc;
		}
	}
	if (n)
		memcpy(b->p + b->n, s, n);
	b->n += n;
	if (b->cap)
		b->p[b->n] = 0;
}

void bt_buf_puts(struct bt_buf *b, const char *s)
{
	bt_buf_put(b, s, strlen(s));
}

void bt_buf_printf(struct bt_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		bt_buf_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void bt_write(int fd, const char *p, size_t n)
{
	while (n && fd >= 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

void bt_output(struct bt_program *p, const char *s, size_t n)
{
	if (!n || p->out.id.fd < 0)
		return;
	if (!sp_fdout_ours(&p->out)) {
		atomic_fetch_add(&p->out.lost, 1);
		return;
	}
	bt_write(p->out.id.fd, s, n);
}

/* -------------------------------------------------------------- printf */

int bt_fmt_parse(const char *text, size_t len, struct bt_fmt **out, char *err, size_t errlen)
{
	struct bt_fmt *f = sp_calloc(1, sizeof(*f));
	if (!f || !(f->text = sp_malloc(len + 1)) || !(f->p = sp_calloc(len + 1, sizeof(*f->p)))) {
		bt_fmt_free(f);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(f->text, text, len);
	f->text[len] = 0;
	const char *s = f->text, *lit = s;
	size_t i = 0;
	while (i < len) {
		if (s[i] != '%') {
			i++;
			continue;
		}
		if (i + 1 < len && s[i + 1] == '%') {   /* "%%": the literal ends with one '%' */
			struct bt_fmt_piece *p = &f->p[f->n++];
			p->lit = lit;
			p->lit_len = (size_t)(s + i + 1 - lit);
			i += 2;
			lit = s + i;
			continue;
		}
		struct bt_fmt_piece *p = &f->p[f->n++];
		p->lit = lit;
		p->lit_len = (size_t)(s + i - lit);
		p->width = p->prec = -1;
		size_t start = i++;
		for (; i < len && strchr("-0+ #", s[i]); i++) {
			p->left |= s[i] == '-';
			p->zero |= s[i] == '0';
			p->plus |= s[i] == '+';
			p->space |= s[i] == ' ';
		}
		if (i < len && s[i] >= '0' && s[i] <= '9') {
			p->width = 0;
			for (; i < len && s[i] >= '0' && s[i] <= '9' && p->width < 1000; i++)
				p->width = p->width * 10 + (s[i] - '0');
		}
		if (i < len && s[i] == '.') {
			p->prec = 0;
			for (i++; i < len && s[i] >= '0' && s[i] <= '9' && p->prec < 1000; i++)
				p->prec = p->prec * 10 + (s[i] - '0');
		}
		while (i < len && strchr("hlzj", s[i]))
			i++;
		if (i >= len || !strchr("diuxXoscp", s[i])) {
			snprintf(err, errlen, "format '%.*s': unsupported conversion (the subset has %%d %%i %%u %%x %%X %%o %%s %%c %%p %%%%)",
				 (int)(i < len ? i + 1 - start : i - start), s + start);
			bt_fmt_free(f);
			return -1;
		}
		p->conv = s[i] == 'i' ? 'd' : s[i];
		lit = s + ++i;
	}
	struct bt_fmt_piece *tail = &f->p[f->n++];
	tail->lit = lit;
	tail->lit_len = (size_t)(s + len - lit);
	*out = f;
	return 0;
}

void bt_fmt_free(struct bt_fmt *f)
{
	if (!f)
		return;
	sp_free(f->text);
	sp_free(f->p);
	sp_free(f);
}

void bt_format(struct bt_buf *out, const struct bt_fmt *f, const int64_t *vals, const char *const *strs)
{
	int k = 0;
	for (int i = 0; i < f->n; i++) {
		const struct bt_fmt_piece *p = &f->p[i];
		bt_buf_put(out, p->lit, p->lit_len);
		if (!p->conv)
			continue;
		char spec[32], *o = spec;
		*o++ = '%';
		if (p->left) *o++ = '-';
		if (p->zero) *o++ = '0';
		if (p->plus) *o++ = '+';
		if (p->space) *o++ = ' ';
		o += p->width >= 0 ? sprintf(o, "%d", p->width) : 0;
		o += p->prec >= 0 ? sprintf(o, ".%d", p->prec) : 0;
		char tmp[256];
		if (p->conv == 's') {
			*o++ = 's';
			*o = 0;
			char num[24];
			const char *s = strs[k];
			if (!s) {
				snprintf(num, sizeof(num), "%" PRId64, vals[k]);
				s = num;
			}
			snprintf(tmp, sizeof(tmp), spec, s);
		} else if (p->conv == 'c') {
			*o++ = 'c';
			*o = 0;
			snprintf(tmp, sizeof(tmp), spec, (int)(unsigned char)vals[k]);
		} else if (p->conv == 'p') {
			snprintf(tmp, sizeof(tmp), "0x%" PRIx64, (uint64_t)vals[k]);
		} else {
			*o++ = 'l';
			*o++ = 'l';
			*o++ = p->conv;
			*o = 0;
			if (p->conv == 'd')
				snprintf(tmp, sizeof(tmp), spec, (long long)vals[k]);
			else
				snprintf(tmp, sizeof(tmp), spec, (unsigned long long)vals[k]);
		}
		bt_buf_puts(out, tmp);
		k++;
	}
}

/* ---------------------------------------------------------------- maps */

struct ent {
	const unsigned char *key;
	const uint64_t *val;
	int64_t sort;            /* the value bpftrace sorts this map by */
	bool sort_unsigned;
};

/* bpftrace's sort_by_key: integers as unsigned, strings with strncmp, the
 * first key first. */
static int key_cmp(const struct bt_map *sorting, const unsigned char *a, const unsigned char *b)
{
	size_t o = 0;
	for (int i = 0; i < sorting->nkeys; i++) {
		int c;
		if (sorting->key_type[i] == BT_STRT) {
			c = strncmp((const char *)a + o, (const char *)b + o, BT_STR);
			o += BT_STR;
		} else if (sorting->key_type[i] == BT_STACKT) {
			size_t nb = BT_STACK_BYTES(sorting->key_depth[i]);
			c = 0;
			for (size_t w = 0; w < nb && !c; w += 8) {
				uint64_t x, y;
				memcpy(&x, a + o + w, 8);
				memcpy(&y, b + o + w, 8);
				c = x < y ? -1 : x > y;
			}
			o += nb;
		} else {
			uint64_t x, y;
			memcpy(&x, a + o, 8);
			memcpy(&y, b + o, 8);
			c = x < y ? -1 : x > y;
			o += 8;
		}
		if (c)
			return c;
	}
	return 0;
}

static int ent_cmp(const void *va, const void *vb, void *vm)
{
	const struct bt_map *sorting = vm;
	const struct ent *a = va, *b = vb;
	if (sorting->mk != BM_STR && sorting->mk != BM_STACK) {
		if (a->sort_unsigned ? (uint64_t)a->sort != (uint64_t)b->sort : a->sort != b->sort) {
			if (a->sort_unsigned)
				return (uint64_t)a->sort < (uint64_t)b->sort ? -1 : 1;
			return a->sort < b->sort ? -1 : 1;
		}
	}
	return key_cmp(sorting, a->key, b->key);
}

static int64_t min_of(uint64_t w)
{
	return w ? (int64_t)(0xffffffffull - w) : 0;   /* wraps: no signed overflow */
}

static bt_sym_fn symbolizer;

void bt_set_symbolizer(bt_sym_fn fn)
{
	symbolizer = fn;
}

void bt_put_stack(struct bt_buf *b, const uint64_t *stack, int indent)
{
	static const char spaces[] = "        ";
	bt_buf_put(b, "\n", 1);
	uint64_t n = stack[0] < BT_USTACK_MAX ? stack[0] : BT_USTACK_MAX;
	for (uint64_t i = 0; i < n; i++) {
		char sym[256];
		if (symbolizer)
			symbolizer((uintptr_t)stack[1 + i], sym, sizeof(sym));
		else
			snprintf(sym, sizeof(sym), "0x%" PRIx64, stack[1 + i]);
		bt_buf_put(b, spaces, (size_t)(indent < 8 ? indent : 8));
		bt_buf_puts(b, sym);
		bt_buf_put(b, "\n", 1);
	}
}

/* KEY's parts joined by SEP (bpftrace: ", " in text, "," in JSON). */
static void put_key_parts(struct bt_buf *b, const struct bt_map *m, const unsigned char *key, const char *sep)
{
	size_t o = 0;
	for (int i = 0; i < m->nkeys; i++) {
		if (i)
			bt_buf_puts(b, sep);
		if (m->key_type[i] == BT_STRT) {
			bt_buf_put(b, (const char *)key + o, strnlen((const char *)key + o, BT_STR));
			o += BT_STR;
		} else if (m->key_type[i] == BT_STACKT) {
			uint64_t st[1 + BT_USTACK_MAX];
			memcpy(st, key + o, BT_STACK_BYTES(m->key_depth[i]));
			bt_put_stack(b, st, 4);   /* bpftrace: a key's frames by 4 spaces */
			o += BT_STACK_BYTES(m->key_depth[i]);
		} else {
			int64_t v;
			memcpy(&v, key + o, 8);
			bt_buf_printf(b, "%" PRId64, v);
			o += 8;
		}
	}
}

static void put_key(struct bt_buf *b, const struct bt_map *m, const unsigned char *key)
{
	bt_buf_puts(b, m->name);
	if (!m->nkeys)
		return;
	bt_buf_put(b, "[", 1);
	put_key_parts(b, m, key, ", ");
	bt_buf_put(b, "]", 1);
}

/* bpftrace's hist_index_label: a power of two with K, M, G, T. */
static void hist_label(char *out, size_t n, int power)
{
	const char *suffix = "";
	if (power >= 40) { suffix = "T"; power -= 40; }
	else if (power >= 30) { suffix = "G"; power -= 30; }
	else if (power >= 20) { suffix = "M"; power -= 20; }
	else if (power >= 10) { suffix = "K"; power -= 10; }
	snprintf(out, n, "%d%s", 1 << power, suffix);
}

static void lhist_label(char *out, size_t n, int64_t v)
{
	if (v == 0)
		snprintf(out, n, "0");
	else if (v % 1048576 == 0)
		snprintf(out, n, "%" PRId64 "M", v / 1048576);
	else if (v % 1024 == 0)
		snprintf(out, n, "%" PRId64 "K", v / 1024);
	else
		snprintf(out, n, "%" PRId64, v);
}

static void bar_line(struct bt_buf *b, const char *header, uint64_t v, uint64_t max)
{
	/* bpftrace: int bar_width = values.at(i)/(float)max_value*max_width,
	 * with max_value an int */
	int bar = (int)((float)v / (float)(int)max * 52);
	char bars[53];
	memset(bars, '@', (size_t)bar);
	bars[bar] = 0;
	bt_buf_printf(b, "%-16s%8" PRIu64 " |%-52s|\n", header, v, bars);
}

/* The first and the last non-empty of the N buckets at V (*FIRST -1:
 * none), and the largest count, compared as bpftrace does (as ints). */
static void nonempty(const uint64_t *v, int n, int *first, int *last, uint64_t *max)
{
	*first = *last = -1;
	*max = 0;
	for (int i = 0; i < n; i++) {
		if (v[i] > 0) {
			if (*first < 0)
				*first = i;
			*last = i;
		}
		if ((int)v[i] > (int)*max)
			*max = v[i];
	}
}

static void put_hist(struct bt_buf *b, const uint64_t *v)
{
	int lo, hi;
	uint64_t max;
	nonempty(v, BT_HIST_BUCKETS, &lo, &hi, &max);
	for (int i = lo; lo >= 0 && i <= hi; i++) {
		char h[64], l1[16], l2[16];
		if (i == 0)
			snprintf(h, sizeof(h), "(..., 0)");
		else if (i == 1)
			snprintf(h, sizeof(h), "[0]");
		else if (i == 2)
			snprintf(h, sizeof(h), "[1]");
		else {
			hist_label(l1, sizeof(l1), i - 2);
			hist_label(l2, sizeof(l2), i - 1);
			snprintf(h, sizeof(h), "[%s, %s)", l1, l2);
		}
		bar_line(b, h, v[i], max);
	}
}

/* An lhist's buckets between its open ends. */
static int lhist_buckets(const struct bt_map *m)
{
	return (int)((m->lmax - m->lmin) / m->lstep);
}

static void put_lhist(struct bt_buf *b, const struct bt_map *m, const uint64_t *v)
{
	int buckets = lhist_buckets(m);
	int start, end;
	uint64_t max;
	nonempty(v, buckets + 2, &start, &end, &max);
	if (start < 0)
		return;
	for (int i = start; i <= end; i++) {
		char h[64], l1[24], l2[24];
		if (i == 0) {
			lhist_label(l1, sizeof(l1), m->lmin);
			snprintf(h, sizeof(h), "(..., %s)", l1);
		} else if (i == buckets + 1) {
			lhist_label(l1, sizeof(l1), m->lmax);
			snprintf(h, sizeof(h), "[%s, ...)", l1);
		} else {
			lhist_label(l1, sizeof(l1), (i - 1) * m->lstep + m->lmin);
			lhist_label(l2, sizeof(l2), i * m->lstep + m->lmin);
			snprintf(h, sizeof(h), "[%s, %s)", l1, l2);
		}
		bar_line(b, h, v[i], max);
	}
}

static void put_value(struct bt_buf *b, const struct bt_map *m, const uint64_t *v)
{
	switch (m->mk) {
	case BM_STR:
		bt_buf_put(b, (const char *)v, strnlen((const char *)v, BT_STR));
		break;
	case BM_COUNT:
	case BM_MAX:
		bt_buf_printf(b, "%" PRIu64, v[0]);
		break;
	case BM_MIN:
		bt_buf_printf(b, "%" PRId64, min_of(v[0]));
		break;
	case BM_AVG:
		bt_buf_printf(b, "%" PRId64, v[0] ? (int64_t)v[1] / (int64_t)v[0] : 0);
		break;
	case BM_STATS:
		bt_buf_printf(b, "count %" PRId64 ", average %" PRId64 ", total %" PRId64, (int64_t)v[0],
			      v[0] ? (int64_t)v[1] / (int64_t)v[0] : 0, (int64_t)v[1]);
		break;
	case BM_HIST:
		put_hist(b, v);
		break;
	case BM_LHIST:
		put_lhist(b, m, v);
		break;
	case BM_STACK:   /* a value's frames by 8 spaces */
		bt_put_stack(b, v, 8);
		break;
	default:   /* int, sum */
		if (m->val_signed)
			bt_buf_printf(b, "%" PRId64, (int64_t)v[0]);
		else
			bt_buf_printf(b, "%" PRIu64, v[0]);
	}
}

static void sort_key(struct ent *e, const struct bt_map *m)
{
	const uint64_t *v = e->val;
	e->sort_unsigned = false;
	switch (m->mk) {
	case BM_COUNT: case BM_MAX: e->sort = (int64_t)v[0]; e->sort_unsigned = true; break;
	case BM_MIN: e->sort = min_of(v[0]); break;
	case BM_AVG: case BM_STATS: e->sort = v[0] ? (int64_t)v[1] / (int64_t)v[0] : 0; break;
	case BM_HIST: case BM_LHIST: {
		int64_t t = 0;
		for (size_t i = 0; i < m->val_words; i++)
			t += (int64_t)v[i];
		e->sort = t;
		break;
	}
	default: e->sort = (int64_t)v[0]; e->sort_unsigned = !m->val_signed; break;
	}
}

/* M's live entries in bpftrace's order: malloc'ed, *NP of them, read
 * from *VIEW (the table with the threads' parts merged, bt_shard.h: freed
 * by the caller with bt_map_view_free once printed). */
static struct ent *sorted(struct bt_map *m, size_t *np, struct bt_map **view)
{
	m = *view = bt_map_view(m);
	size_t n = 0, cap = 0;
	struct ent *es = NULL;
	const unsigned char *key;
	const uint64_t *val;
	for (long i = bt_map_next(m, 0, &key, &val); i >= 0; i = bt_map_next(m, (size_t)i + 1, &key, &val)) {
		if (n == cap) {
			struct ent *p = sp_realloc(es, (cap = cap ? cap * 2 : 64) * sizeof(*es));
			if (!p)
				break;
			es = p;
		}
		es[n].key = key;
		es[n].val = val;
		sort_key(&es[n], m);
		n++;
	}
	if (n)
		sp_qsort_r(es, n, sizeof(*es), ent_cmp, m);
	*np = n;
	return es;
}

void bt_print_map(struct bt_buf *b, struct bt_map *m)
{
	size_t n;
	struct bt_map *view;
	struct ent *es = sorted(m, &n, &view);
	bool hist = m->mk == BM_HIST || m->mk == BM_LHIST;
	for (size_t i = 0; i < n; i++) {
		if (i && m->mk != BM_STACK)   /* a stack value ends in its own newline */
			bt_buf_put(b, "\n", 1);
		put_key(b, m, es[i].key);
		bt_buf_put(b, hist ? ": \n" : ": ", hist ? 3 : 2);
		put_value(b, m, es[i].val);
	}
	bt_buf_put(b, "\n", 1);
	if (m->mk == BM_AVG || m->mk == BM_STATS)
		bt_buf_put(b, "\n", 1);
	sp_free(es);
	bt_map_view_free(m, view);
}

/* What bpftrace prints of P's maps at its end: two newlines, then each
 * map as PRINT writes it. */
static void print_all(struct bt_buf *b, struct bt_program *p, void (*print)(struct bt_buf *b, struct bt_map *m))
{
	bt_buf_puts(b, "\n\n");
	for (struct bt_map *m = p->maps; m; m = m->next)
		print(b, m);
}

void bt_print_all(struct bt_buf *b, struct bt_program *p)
{
	print_all(b, p, bt_print_map);
}

/* ---------------------------------------------------------------- JSON
 *
 * bpftrace 0.17's -f json: a line per map, {"type": T, "data": {NAME: V}},
 * T "map" ("stats" for avg and stats, "hist" for hist and lhist); with
 * keys, V is an object keyed by the key's parts joined by ','; the entries
 * in the text output's order. */

static void json_str(struct bt_buf *b, const char *s, size_t n)
{
	bt_buf_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': bt_buf_put(b, "\\\"", 2); break;
		case '\\': bt_buf_put(b, "\\\\", 2); break;
		case '\n': bt_buf_put(b, "\\n", 2); break;
		case '\t': bt_buf_put(b, "\\t", 2); break;
		case '\r': bt_buf_put(b, "\\r", 2); break;
		default:
			if (c < 0x20)
				bt_buf_printf(b, "\\u%04x", c);
			else
				bt_buf_put(b, (const char *)&c, 1);
		}
	}
	bt_buf_put(b, "\"", 1);
}

void bt_json_printf(struct bt_buf *b, const char *s, size_t n)
{
	bt_buf_puts(b, "{\"type\": \"printf\", \"data\": ");
	json_str(b, s, n);
	bt_buf_puts(b, "}\n");
}

/* A histogram's N buckets at V as a JSON array, from the first non-empty
 * one to the last: each bucket's bounds (BOUNDS writes its first members),
 * then its count. */
static void json_buckets(struct bt_buf *b, const struct bt_map *m, const uint64_t *v, int n,
			 void (*bounds)(struct bt_buf *b, const struct bt_map *m, int i))
{
	int lo, hi;
	uint64_t max;
	nonempty(v, n, &lo, &hi, &max);
	bt_buf_put(b, "[", 1);
	for (int i = lo; lo >= 0 && i <= hi; i++) {
		if (i > lo)
			bt_buf_put(b, ", ", 2);
		bounds(b, m, i);
		bt_buf_printf(b, "\"count\": %" PRIu64 "}", v[i]);
	}
	bt_buf_put(b, "]", 1);
}

static void hist_bounds(struct bt_buf *b, const struct bt_map *m, int i)
{
	(void)m;
	if (i == 0)
		bt_buf_puts(b, "{\"max\": -1, ");
	else if (i == 1)
		bt_buf_puts(b, "{\"min\": 0, \"max\": 0, ");
	else if (i == 2)
		bt_buf_puts(b, "{\"min\": 1, \"max\": 1, ");
	else
		bt_buf_printf(b, "{\"min\": %" PRIu64 ", \"max\": %" PRIu64 ", ", (uint64_t)1 << (i - 2),
			      ((uint64_t)1 << (i - 1)) - 1);
}

static void lhist_bounds(struct bt_buf *b, const struct bt_map *m, int i)
{
	if (i == 0)
		bt_buf_printf(b, "{\"max\": %" PRId64 ", ", m->lmin - 1);
	else if (i == lhist_buckets(m) + 1)
		bt_buf_printf(b, "{\"min\": %" PRId64 ", ", m->lmax);
	else
		bt_buf_printf(b, "{\"min\": %" PRId64 ", \"max\": %" PRId64 ", ", (i - 1) * m->lstep + m->lmin,
			      i * m->lstep + m->lmin - 1);
}

static void json_value(struct bt_buf *b, const struct bt_map *m, const uint64_t *v)
{
	switch (m->mk) {
	case BM_STR:
		json_str(b, (const char *)v, strnlen((const char *)v, BT_STR));
		break;
	case BM_STACK: {
		struct bt_buf t = { 0 };
		bt_put_stack(&t, v, 8);
		json_str(b, t.p ? t.p : "", t.n);
		sp_free(t.p);
		break;
	}
	case BM_STATS:
		bt_buf_printf(b, "{\"count\": %" PRId64 ", \"average\": %" PRId64 ", \"total\": %" PRId64 "}",
			      (int64_t)v[0], v[0] ? (int64_t)v[1] / (int64_t)v[0] : 0, (int64_t)v[1]);
		break;
	case BM_HIST:
		json_buckets(b, m, v, BT_HIST_BUCKETS, hist_bounds);
		break;
	case BM_LHIST:
		json_buckets(b, m, v, lhist_buckets(m) + 2, lhist_bounds);
		break;
	default:   /* numbers: as the text prints them */
		put_value(b, m, v);
	}
}

void bt_print_map_json(struct bt_buf *b, struct bt_map *m)
{
	const char *type = m->mk == BM_AVG || m->mk == BM_STATS ? "stats" :
			   m->mk == BM_HIST || m->mk == BM_LHIST ? "hist" : "map";
	size_t n;
	struct bt_map *view;
	struct ent *es = sorted(m, &n, &view);
	bt_buf_printf(b, "{\"type\": \"%s\", \"data\": {", type);
	json_str(b, m->name, strlen(m->name));
	bt_buf_puts(b, ": ");
	if (m->nkeys)
		bt_buf_put(b, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (!m->nkeys) {
			json_value(b, m, es[i].val);
			break;
		}
		if (i)
			bt_buf_put(b, ", ", 2);
		struct bt_buf k = { 0 };
		put_key_parts(&k, m, es[i].key, ",");
		json_str(b, k.p ? k.p : "", k.n);
		sp_free(k.p);
		bt_buf_puts(b, ": ");
		json_value(b, m, es[i].val);
	}
	if (m->nkeys)
		bt_buf_put(b, "}", 1);
	else if (!n)
		bt_buf_puts(b, "null");
	bt_buf_puts(b, "}}\n");
	sp_free(es);
	bt_map_view_free(m, view);
}

void bt_print_all_json(struct bt_buf *b, struct bt_program *p)
{
	print_all(b, p, bt_print_map_json);
}
