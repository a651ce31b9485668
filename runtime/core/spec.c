/* spec — the UPROBE_SPEC parser.
 *
 * Approach.  The input is scanned once, left to right, as (pointer, length)
 * slices; nothing is NUL-terminated or modified in place, so any byte string
 * is fine (a NUL inside an @FILE is rejected before parsing).  Items end at
 * ';', '\n' or '\r' (and, in an @FILE, at a '#' comment running to the end of
 * the line); each item is trimmed and empty ones are skipped.  An item is
 * split at its first '=' into probe and action; the probe is split at every
 * ':' into at most 4 fields, so an object path cannot contain ':' (nor '=',
 * ';' or '#' in a file) — a documented limitation.  Each field is validated
 * on its own with a message that quotes it:
 *
 *   uprobe:malloc                    location only: the main executable
 *   uprobe:libc:malloc+0x10          object, symbol glob, offset
 *   uretprobe:./app:0x401126         object, ELF virtual address
 *   usdt:./app:provider:name         usdt: [object:]provider:name
 *   …=count|latency|trace|stack      built-in action (default: count)
 *   …=./handlers.so:on_hit           plugin: path up to the LAST ':', a C function
 *
 * Symbols are given mangled (C++ '::' would be taken for separators): letters,
 * digits, '_', '.', '$', '@' (malloc@GLIBC_2.2.5) and the globs * ? [...].
 * Numbers are parsed by hand (decimal, or hex after "0x"): no sign, no
 * whitespace, no octal, overflow is an error — strtoull accepts all of these.
 *
 * A few semantic checks live here because the parser can say them best: a
 * return probe (uretprobe, usession) and the latency action attach at a
 * function entry, so they refuse '+offset'; usdt sites have no return, so
 * usdt refuses latency.
 *
 * Every item that fails becomes an sp_spec_error (the trimmed item, and the
 * first thing wrong with it); the others still parse.  Results are built in
 * local growable arrays and appended to the caller's struct in one step, so
 * -ENOMEM leaves it empty as promised.  Pure: malloc only, no globals.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "spec.h"
#include "heap.h"
#include "bt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An @FILE larger than this is refused (and "@/dev/zero" cannot hang us). */
#define SPEC_FILE_MAX (64u << 20)
/* Quoted text in messages is cut to this many bytes (the error's item field
 * still holds it all). */
#define QUOTE_MAX 80
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)

struct slice {
	const char *p;
	size_t n;
};

/* ------------------------------------------------------------------ text */

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_ctrl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static struct slice mk(const char *p, size_t n)
{
	struct slice s = { p, n };
	return s;
}

static struct slice trim(struct slice s)
{
	while (s.n && is_space((unsigned char)s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n && is_space((unsigned char)s.p[s.n - 1]))
		s.n--;
	return s;
}

static bool eq(struct slice s, const char *word)
{
	size_t n = strlen(word);
	return s.n == n && memcmp(s.p, word, n) == 0;
}

static const char *find(struct slice s, char c)
{
	return s.n ? memchr(s.p, c, s.n) : NULL;
}

static bool has_hex_prefix(struct slice s)
{
	return s.n >= 2 && s.p[0] == '0' && (s.p[1] == 'x' || s.p[1] == 'X');
}

static char *dup_slice(struct slice s)
{
	char *d = sp_malloc(s.n + 1);
	if (!d)
		return NULL;
	if (s.n)
		memcpy(d, s.p, s.n);
	d[s.n] = '\0';
	return d;
}

/* S for a message: non-printable bytes as \xNN, cut at MAX bytes with "...",
 * into BUF (MAX * 4 + 8 bytes). */
static const char *quote_max(char *buf, struct slice s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, n = s.n < max ? s.n : max;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (is_ctrl(c) || c >= 0x80) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		} else {
			buf[o++] = (char)c;
		}
	}
	if (n < s.n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* S cut at QUOTE_MAX bytes: a message stays one readable line whatever the
 * input.  (A file's name is never cut: read_spec_file.) */
static const char *quote(char buf[QUOTE_BUF], struct slice s)
{
	return quote_max(buf, s, QUOTE_MAX);
}

/* Set *MSG to a malloc'ed message.  -EINVAL (the item is bad), or -ENOMEM. */
__attribute__((format(printf, 2, 3)))
static int fail(char **msg, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	*msg = sp_malloc((size_t)n + 1);
	if (!*msg)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(*msg, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Decimal, or hex after "0x"/"0X".  Digits only: no sign, no spaces, no
 * octal, no overflow.  0 or -EINVAL (*TOO_BIG tells why). */
static int parse_u64(struct slice s, uint64_t *out, bool *too_big)
{
	unsigned base = 10;
	uint64_t v = 0;
	size_t i = 0;

	*too_big = false;
	if (has_hex_prefix(s)) {
		base = 16;
		i = 2;
	}
	if (i == s.n)
		return -EINVAL;
	for (; i < s.n; i++) {
		int d = base == 16 ? hex_value((unsigned char)s.p[i])
				   : (is_digit((unsigned char)s.p[i]) ? s.p[i] - '0' : -1);
		if (d < 0)
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)d) / base) {
			*too_big = true;
			return -EINVAL;
		}
		v = v * base + (uint64_t)d;
	}
	*out = v;
	return 0;
}

/* ------------------------------------------------------------ validation */

static bool is_symbol_char(unsigned char c)
{
	/* '/' and '-': Go's package paths (net/http.Get) and method values (-fm) */
	return is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == '$' || c == '@' || c == '/' ||
	       c == '-';
}

/* A character a demangled C++ name would bring. */
static bool is_cxx_char(unsigned char c)
{
	return c == '(' || c == ')' || c == '<' || c == '>' || c == ',' || c == '~' || c == '&';
}

/* One bad byte C at index I of S (WHAT names the field). */
static int bad_char(char **msg, const char *what, struct slice s, size_t i)
{
	char qc[QUOTE_BUF], qs[QUOTE_BUF];
	unsigned char c = (unsigned char)s.p[i];

	quote(qc, mk(s.p + i, 1));
	quote(qs, s);
	if (is_space(c))
		return fail(msg, "whitespace in %s '%s'", what, qs);
	if (is_ctrl(c))
		return fail(msg, "control character '%s' in %s '%s'", qc, what, qs);
	if (is_cxx_char(c))
		return fail(msg, "invalid character '%s' in %s '%s' (C++ symbols must be given "
			    "mangled, e.g. _ZN3foo3barEv)", qc, what, qs);
	return fail(msg, "invalid character '%s' in %s '%s' (allowed: letters, digits, "
		    "'_', '.', '$', '@' and the globs '*', '?', '[...]')", qc, what, qs);
}

/* Whether S at I starts with the C string T. */
static bool at(struct slice s, size_t i, const char *t)
{
	size_t n = strlen(t);
	return i + n <= s.n && memcmp(s.p + i, t, n) == 0;
}

/* A symbol glob (also a usdt provider or name): symbol characters, '*', '?',
 * and '[...]' holding symbol characters, '-', '!' and '^'.  Non-empty.
 * Go's names as the Go linker writes them pass too: a method's receiver
 * "pkg.(*T).M" ('(' ')' after a '.'), a generic instantiation
 * "pkg.F[go.shape.*uint8_0,go.shape.int_1]" (a set starting "go." may hold
 * '*' and ','); a pattern that is exactly a symbol's name names that
 * symbol (elfsym.h). */
static int check_glob(struct slice s, const char *what, char **msg)
{
	char q[QUOTE_BUF];
	size_t open = 0;
	bool in_set = false, go_set = false;
	int parens = 0;

	if (s.n == 0)
		return fail(msg, "empty %s", what);
	if (is_digit((unsigned char)s.p[0]))
		return fail(msg, "%s '%s' cannot start with a digit", what, quote(q, s));
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (go_set && c != ']') {
			if (!is_symbol_char(c) && c != '*' && c != ',')
				return bad_char(msg, what, s, i);
		} else if (c == '(' && i > 0 && s.p[i - 1] == '.' && !in_set) {
			parens++;   /* a Go method's receiver */
		} else if (c == ')' && parens > 0) {
			parens--;
		} else if (c == '[') {
			if (in_set)
				return fail(msg, "'[' inside '[...]' in %s '%s'", what, quote(q, s));
			in_set = true;
			go_set = at(s, i + 1, "go.");
			open = i;
		} else if (c == ']') {
			if (!in_set)
				return fail(msg, "unmatched ']' in %s '%s'", what, quote(q, s));
			if (i == open + 1 || (i == open + 2 && (s.p[open + 1] == '!' || s.p[open + 1] == '^')))
				return fail(msg, "empty '[]' in %s '%s'", what, quote(q, s));
			in_set = go_set = false;
		} else if (c == '*' || c == '?') {
			if (in_set)
				return fail(msg, "'%c' inside '[...]' in %s '%s'", c, what, quote(q, s));
		} else if (in_set && (c == '-' || c == '!' || c == '^')) {
			/* a range or a negation inside a set */
		} else if (!is_symbol_char(c)) {
			return bad_char(msg, what, s, i);
		}
	}
	if (in_set)
		return fail(msg, "unterminated '[' in %s '%s'", what, quote(q, s));
	return 0;
}

/* An object: a path or a library name; anything printable, but not empty
 * and not padded with blanks (which would never match a file). */
static int check_object(struct slice s, char **msg)
{
	char q[QUOTE_BUF];

	if (s.n == 0)
		return fail(msg, "empty object name");
	if (is_space((unsigned char)s.p[0]) || is_space((unsigned char)s.p[s.n - 1]))
		return fail(msg, "whitespace around object name '%s'", quote(q, s));
	for (size_t i = 0; i < s.n; i++)
		if (is_ctrl((unsigned char)s.p[i]))
			return bad_char(msg, "object name", s, i);
	return 0;
}

static bool is_c_identifier(struct slice s)
{
	if (s.n == 0 || is_digit((unsigned char)s.p[0]))
		return false;
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (!is_alpha(c) && !is_digit(c) && c != '_')
			return false;
	}
	return true;
}

/* --------------------------------------------------------------- probes */

static const char *const kind_names[] = {
	[SP_KIND_UPROBE] = "uprobe",
	[SP_KIND_URETPROBE] = "uretprobe",
	[SP_KIND_USESSION] = "usession",
	[SP_KIND_USDT] = "usdt",
};

static const char *const action_names[] = {
	[SP_ACT_COUNT] = "count",
	[SP_ACT_LATENCY] = "latency",
	[SP_ACT_TRACE] = "trace",
	[SP_ACT_STACK] = "stack",
	[SP_ACT_PLUGIN] = "plugin",
	[SP_ACT_PROGRAM] = "program",
};

#define MAX_FIELDS 4 /* usdt:object:provider:name */

/* Split S at every ':' into F; the number of fields, or MAX_FIELDS + 1 when
 * there are more (F then holds the first MAX_FIELDS). */
static size_t split_fields(struct slice s, struct slice f[MAX_FIELDS])
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= s.n; i++) {
		if (i < s.n && s.p[i] != ':')
			continue;
		if (n == MAX_FIELDS)
			return MAX_FIELDS + 1;
		f[n++] = mk(s.p + start, i - start);
		start = i + 1;
	}
	return n;
}

/* symbol-glob ['+' offset] | '0x' address */
static int parse_location(struct slice loc, struct sp_spec_item *it, char **msg)
{
	char q[QUOTE_BUF];
	const char *plus = find(loc, '+');
	struct slice sym = plus ? mk(loc.p, (size_t)(plus - loc.p)) : loc;
	bool too_big;

	if (loc.n == 0)
		return fail(msg, "missing location (a symbol or a 0x address)");
	if (has_hex_prefix(loc)) {
		if (plus)
			return fail(msg, "an offset is not allowed after an address ('%s')", quote(q, loc));
		if (parse_u64(loc, &it->address, &too_big))
			return fail(msg, "bad address '%s' (%s)", quote(q, loc),
				    too_big ? "more than 64 bits" : "expected 0x and hex digits");
		it->has_address = true;
		return 0;
	}
	if (is_digit((unsigned char)loc.p[0]))
		return fail(msg, "bad location '%s' (a symbol cannot start with a digit; "
			    "write an address as 0x...)", quote(q, loc));
	if (sym.n == 0)
		return fail(msg, "missing symbol before '%s'", quote(q, loc));
	if (plus) {
		struct slice off = mk(plus + 1, loc.n - sym.n - 1);
		if (parse_u64(off, &it->offset, &too_big))
			return fail(msg, "bad offset '+%s' (%s)", quote(q, off),
				    too_big ? "more than 64 bits" : "expected decimal or 0x hex");
		it->has_offset = true;
	}
	int rc = check_glob(sym, "symbol name", msg);
	if (rc)
		return rc;
	return (it->name = dup_slice(sym)) ? 0 : -ENOMEM;
}

/* usdt:[object:]provider:name — F holds the N fields after the kind. */
static int parse_usdt(struct slice *f, size_t n, struct sp_spec_item *it, char **msg)
{
	char q[QUOTE_BUF];
	int rc;

	if (n < 2)
		return fail(msg, "usdt probe needs provider:name (usdt:[object:]provider:name)");
	if (n > 3)
		return fail(msg, "too many ':' fields (expected usdt:[object:]provider:name; "
			    "object paths cannot contain ':')");
	if (n == 3) {
		if ((rc = check_object(f[0], msg)))
			return rc;
		if (!(it->object = dup_slice(f[0])))
			return -ENOMEM;
		f++;
	}
	for (int i = 0; i < 2; i++) {
		if (find(f[i], '+'))
			return fail(msg, "offsets are not allowed in usdt probes ('%s')", quote(q, f[i]));
		if (has_hex_prefix(f[i]))
			return fail(msg, "addresses are not allowed in usdt probes ('%s')", quote(q, f[i]));
	}
	if ((rc = check_glob(f[0], "usdt provider", msg)) ||
	    (rc = check_glob(f[1], "usdt probe name", msg)))
		return rc;
	if (!(it->provider = dup_slice(f[0])) || !(it->name = dup_slice(f[1])))
		return -ENOMEM;
	return 0;
}

/* PROBE is trimmed and holds no '='.  Fills IT's probe fields. */
static int parse_probe(struct slice probe, struct sp_spec_item *it, char **msg)
{
	struct slice f[MAX_FIELDS];
	size_t n = split_fields(probe, f);
	char q[QUOTE_BUF];
	size_t k;
	int rc;

	if (probe.n == 0)
		return fail(msg, "empty probe");
	if (probe.p[0] == '@')
		return fail(msg, "'@FILE' is only allowed as the whole spec");
	if (probe.p[0] == '#')
		return fail(msg, "'#' comments are only allowed in an @FILE");
	for (k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
		if (eq(f[0], kind_names[k]))
			break;
	if (k == sizeof(kind_names) / sizeof(kind_names[0])) {
		if (f[0].n == 0)
			return fail(msg, "missing probe kind before ':' (expected uprobe, uretprobe, "
				    "usession or usdt)");
		return fail(msg, "unknown probe kind '%s' (expected uprobe, uretprobe, usession or usdt)",
			    quote(q, f[0]));
	}
	it->kind = (enum sp_probe_kind)k;
	if (it->kind == SP_KIND_USDT)
		return parse_usdt(f + 1, n - 1, it, msg);

	if (n > 3)
		return fail(msg, "too many ':' fields (expected %s:[object:]location; object paths "
			    "cannot contain ':' and C++ symbols must be mangled)", kind_names[k]);
	if (n == 1)
		return fail(msg, "missing location (expected %s:[object:]location)", kind_names[k]);
	if (n == 3) {
		if ((rc = check_object(f[1], msg)))
			return rc;
		if (!(it->object = dup_slice(f[1])))
			return -ENOMEM;
	}
	if ((rc = parse_location(f[n - 1], it, msg)))
		return rc;
	if (it->has_offset && it->kind != SP_KIND_UPROBE)
		return fail(msg, "an offset is not allowed for %s (return probes attach at a "
			    "function entry)", kind_names[k]);
	return 0;
}

/* --------------------------------------------------------------- actions */

static int parse_action(struct slice act, struct sp_spec_item *it, char **msg)
{
	char q[QUOTE_BUF], q2[QUOTE_BUF];
	const char *colon = NULL;

	if (act.n == 0)
		return fail(msg, "empty action after '=' (expected count, latency, trace, stack "
			    "or PATH:FUNCTION)");
	for (size_t a = 0; a < SP_ACT_PLUGIN; a++) {   /* not "program": only a block makes one */
		if (eq(act, action_names[a])) {
			it->action = (enum sp_action_kind)a;
			return 0;
		}
	}
	for (size_t i = act.n; i-- > 0;) {
		if (act.p[i] == ':') {
			colon = act.p + i;
			break;
		}
	}
	if (!colon) {
		if (find(act, '='))
			return fail(msg, "more than one '=' in item");
		return fail(msg, "unknown action '%s' (expected count, latency, trace, stack or "
			    "PATH:FUNCTION)", quote(q, act));
	}

	struct slice path = mk(act.p, (size_t)(colon - act.p));
	struct slice fn = mk(colon + 1, act.n - path.n - 1);
	if (path.n == 0)
		return fail(msg, "missing plugin path before ':%s'", quote(q, fn));
	for (size_t i = 0; i < path.n; i++)
		if (is_ctrl((unsigned char)path.p[i]))
			return bad_char(msg, "plugin path", path, i);
	if (fn.n == 0)
		return fail(msg, "missing plugin function after '%s:'", quote(q, path));
	if (!is_c_identifier(fn))
		return fail(msg, "bad plugin function '%s' in '%s' (must be a C identifier)",
			    quote(q, fn), quote(q2, act));
	it->action = SP_ACT_PLUGIN;
	if (!(it->plugin_path = dup_slice(path)) || !(it->plugin_fn = dup_slice(fn)))
		return -ENOMEM;
	return 0;
}

/* Rules between a probe and its action. */
static int check_pair(const struct sp_spec_item *it, char **msg)
{
	if (it->action != SP_ACT_LATENCY)
		return 0;
	if (it->kind == SP_KIND_USDT)
		return fail(msg, "latency needs a function entry and return: not available for usdt "
			    "probes (use count, trace, stack or a plugin)");
	if (it->has_offset)
		return fail(msg, "latency needs a function entry: not with an offset");
	return 0;
}

/* ITEM is trimmed and non-empty.  0 (IT filled), -EINVAL (*MSG), -ENOMEM. */
static int parse_item(struct slice item, struct sp_spec_item *it, char **msg)
{
	const char *eqs = find(item, '=');
	struct slice probe = trim(eqs ? mk(item.p, (size_t)(eqs - item.p)) : item);
	int rc;

	memset(it, 0, sizeof(*it));
	it->action = SP_ACT_COUNT;
	if (eqs && probe.n == 0)
		rc = fail(msg, "missing probe before '='");
	else if ((rc = parse_probe(probe, it, msg)) == 0 && eqs)
		rc = parse_action(trim(mk(eqs + 1, item.n - (size_t)(eqs + 1 - item.p))), it, msg);
	if (rc == 0)
		rc = check_pair(it, msg);
	if (rc == 0 && (!(it->text = dup_slice(item)) || !(it->probe_text = dup_slice(probe))))
		rc = -ENOMEM;
	if (rc)
		sp_spec_item_free(it);
	return rc;
}

/* ---------------------------------------------------------- the results */

/* Results of one parse, appended to the caller's struct at the end. */
struct builder {
	struct sp_spec_item *items;
	size_t n_items, cap_items;
	struct sp_spec_error *errors;
	size_t n_errors, cap_errors;
};

static int reserve(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t nc;
	void *p;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 8;
	if (nc < *cap || nc > SIZE_MAX / size)
		return -ENOMEM;
	if (!(p = sp_realloc(*arr, nc * size)))
		return -ENOMEM;
	*arr = p;
	*cap = nc;
	return 0;
}

/* Takes MSG in all cases. */
static int add_error(struct builder *b, struct slice item, char *msg)
{
	struct sp_spec_error *e;

	if (reserve((void **)&b->errors, &b->cap_errors, b->n_errors, sizeof(*b->errors))) {
		sp_free(msg);
		return -ENOMEM;
	}
	e = &b->errors[b->n_errors];
	e->message = msg;
	if (!(e->item = dup_slice(item))) {
		sp_free(msg);
		return -ENOMEM;
	}
	b->n_errors++;
	return 0;
}

static int add_item(struct builder *b, struct slice text)
{
	char *msg = NULL;
	int rc;

	if (reserve((void **)&b->items, &b->cap_items, b->n_items, sizeof(*b->items)))
		return -ENOMEM;
	rc = parse_item(text, &b->items[b->n_items], &msg);
	if (rc == 0)
		b->n_items++;
	else if (rc == -EINVAL)
		rc = add_error(b, text, msg);
	return rc;
}

static void builder_free(struct builder *b)
{
	struct sp_spec s = { b->items, b->n_items, b->errors, b->n_errors };
	sp_spec_free(&s);
	memset(b, 0, sizeof(*b));
}

/* ARR (LEN elements of SIZE bytes) reallocated with the N at FROM copied
 * to its end, or NULL (ARR untouched). */
static void *append(void *arr, size_t len, const void *from, size_t n, size_t size)
{
	size_t total = len + n;
	char *p;
	if (total < n || total > SIZE_MAX / size || !(p = sp_realloc(arr, total * size)))
		return NULL;
	memcpy(p + len * size, from, n * size);
	return p;
}

/* Move B's results to the end of OUT.  On -ENOMEM both are freed. */
static int merge(struct builder *b, struct sp_spec *out)
{
	void *p;

	if (b->n_items) {
		if (!(p = append(out->items, out->n_items, b->items, b->n_items, sizeof(*b->items))))
			goto oom;
		out->items = p;
		out->n_items += b->n_items;
		b->n_items = 0;
	}
	if (b->n_errors) {
		if (!(p = append(out->errors, out->n_errors, b->errors, b->n_errors, sizeof(*b->errors))))
			goto oom;
		out->errors = p;
		out->n_errors += b->n_errors;
		b->n_errors = 0;
	}
	builder_free(b);
	return 0;
oom:
	builder_free(b);
	sp_spec_free(out);
	return -ENOMEM;
}

/* Split TEXT[0..LEN) into items and parse each.  In a file, '#' starts a
 * comment that runs to the end of the line. */
static int parse_text(const char *text, size_t len, bool comments, struct sp_spec *out)
{
	struct builder b = { 0 };
	size_t i = 0;

	if (len && memchr(text, '{', len))   /* no item has a '{': a bpftrace program */
		return sp_bt_parse_spec(text, len, out);
	while (i < len) {
		size_t end = i;
		while (end < len && text[end] != ';' && text[end] != '\n' && text[end] != '\r' &&
		       !(comments && text[end] == '#'))
			end++;
		struct slice item = trim(mk(text + i, end - i));
		if (comments && end < len && text[end] == '#')
			while (end < len && text[end] != '\n')
				end++;
		i = end + 1;
		if (item.n && add_item(&b, item)) {
			builder_free(&b);
			sp_spec_free(out);
			return -ENOMEM;
		}
	}
	return merge(&b, out);
}

/* ------------------------------------------------------------- @FILE */

/* Read PATH whole into *BUF (malloc'ed, *LEN bytes).  0 or -errno; -EFBIG
 * past SPEC_FILE_MAX. */
static int read_file(const char *path, char **buf, size_t *len)
{
	size_t n = 0, cap = 0;
	char *p = NULL, *np;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			if (cap > SPEC_FILE_MAX + 1)
				cap = SPEC_FILE_MAX + 1;
			if (n == cap) {
				err = -EFBIG;
				break;
			}
			if (!(np = sp_realloc(p, cap))) {
				err = -ENOMEM;
				break;
			}
			p = np;
		}
		ssize_t r = read(fd, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (err) {
		sp_free(p);
		return err;
	}
	*buf = p;
	*len = n;
	return 0;
}

/* The contents of the spec file NAME: 0 (*BUF, *LEN), -EINVAL with *MSG
 * saying why it cannot be used, or -ENOMEM. */
static int read_spec_file(struct slice name, char **buf, size_t *len, char **msg)
{
	char ebuf[128], *path, *q;
	int rc;

	if (name.n == 0)
		return fail(msg, "missing file name after '@'");
	if (!(path = dup_slice(name)))
		return -ENOMEM;
	rc = read_file(path, buf, len);
	sp_free(path);
	if (rc == -ENOMEM)
		return rc;
	if (rc == 0 && !memchr(*buf, '\0', *len))
		return 0;
	/* the whole name, however long: it is what the user must find */
	if (!(q = sp_malloc(name.n * 4 + 8)))
		return -ENOMEM;
	quote_max(q, name, name.n);
	if (rc == -EFBIG)
		rc = fail(msg, "cannot read spec file '%s': larger than %u MiB", q, SPEC_FILE_MAX >> 20);
	else if (rc)
		rc = fail(msg, "cannot read spec file '%s': %s", q, strerror_r(-rc, ebuf, sizeof(ebuf)));
	else
		rc = fail(msg, "spec file '%s' contains a NUL byte (not a text file)", q);
	sp_free(q);
	return rc;
}

int sp_spec_read_file(const char *path, char **text, char **msg)
{
	char *buf = NULL, *t = NULL;
	size_t len = 0;
	int rc;

	*text = NULL;
	*msg = NULL;
	rc = read_spec_file(mk(path, strlen(path)), &buf, &len, msg);
	if (rc == 0 && !(t = sp_realloc(buf, len + 1)))
		rc = -ENOMEM;
	if (rc) {
		sp_free(buf);
		return rc;
	}
	t[len] = 0;
	*text = t;
	return 0;
}

bool sp_spec_is_program(const char *text)
{
	return text && strchr(text, '{');   /* as parse_text decides */
}

void sp_spec_blank_comments(char *text)
{
	/* parse_text's rule in a file: '#' up to the newline (which stays) */
	for (char *p = text; (p = strchr(p, '#')) != NULL;) {
		size_t n = strcspn(p, "\n");
		memset(p, ' ', n);
		p += n;
	}
}

/* AT is the trimmed "@FILE".  A file that cannot be read is an error entry
 * naming AT, like any bad item. */
static int load_file(struct slice at, struct sp_spec *out)
{
	struct builder b = { 0 };
	char *buf = NULL, *msg = NULL;
	size_t len = 0;
	int rc = read_spec_file(trim(mk(at.p + 1, at.n - 1)), &buf, &len, &msg);

	if (rc == 0)
		rc = parse_text(buf, len, true, out);
	else if (rc == -EINVAL)
		rc = add_error(&b, at, msg) ? -ENOMEM : merge(&b, out);
	sp_free(buf);
	if (rc == -ENOMEM) {
		builder_free(&b);
		sp_spec_free(out);
	}
	return rc;
}

/* ------------------------------------------------------------- the API */

int sp_spec_parse(const char *text, struct sp_spec *out)
{
	if (!out)
		return -EINVAL;
	if (!text)
		return 0;
	return parse_text(text, strlen(text), false, out);
}

int sp_spec_load(const char *text, struct sp_spec *out)
{
	struct slice s;

	if (!out)
		return -EINVAL;
	if (!text)
		return 0;
	s = trim(mk(text, strlen(text)));
	if (s.n && s.p[0] == '@')
		return load_file(s, out);
	return parse_text(text, strlen(text), false, out);
}

int sp_spec_parse_probe(const char *text, struct sp_spec_item *item, char **err)
{
	struct slice s = trim(mk(text ? text : "", text ? strlen(text) : 0));
	char *msg = NULL;
	int rc;

	if (err)
		*err = NULL;
	if (!item)
		return -EINVAL;
	memset(item, 0, sizeof(*item));
	if (find(s, ';') || find(s, '\n') || find(s, '\r'))
		rc = fail(&msg, "only one probe is allowed here (found ';' or a newline)");
	else if (find(s, '='))
		rc = fail(&msg, "an action is not allowed here");
	else
		rc = parse_item(s, item, &msg);
	if (rc == -EINVAL) {
		if (err)
			*err = msg;
		else
			sp_free(msg);
	}
	return rc;
}

void sp_spec_item_free(struct sp_spec_item *it)
{
	if (!it)
		return;
	sp_free(it->text);
	sp_free(it->probe_text);
	sp_free(it->object);
	sp_free(it->provider);
	sp_free(it->name);
	sp_free(it->plugin_path);
	sp_free(it->plugin_fn);
	sp_bt_item_release(it->program);
	memset(it, 0, sizeof(*it));
}

void sp_spec_free(struct sp_spec *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_items; i++)
		sp_spec_item_free(&s->items[i]);
	for (size_t i = 0; i < s->n_errors; i++) {
		sp_free(s->errors[i].item);
		sp_free(s->errors[i].message);
	}
	sp_free(s->items);
	sp_free(s->errors);
	memset(s, 0, sizeof(*s));
}

const char *sp_kind_name(enum sp_probe_kind k)
{
	return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

const char *sp_action_name(enum sp_action_kind a)
{
	return (unsigned)a < sizeof(action_names) / sizeof(action_names[0]) ? action_names[a] : "?";
}

/* ---- a bpftrace program as spec items ----
 *
 * The program is parsed and compiled whole; each probe of each
 * group is then an ordinary spec item (the probe text validated by the
 * spec parser, so objects, globs and USDT names mean what they mean in a
 * spec) with action SP_ACT_PROGRAM and a reference to its compiled block.
 * Any error, in the program or in one of its probes, yields no item at
 * all: the process runs unprobed and the error, with its line and column,
 * is in the report.
 */

static int add_program_error(struct sp_spec *out, const char *item, const struct bt_error *e)
{
	struct sp_spec_error *p = sp_realloc(out->errors, (out->n_errors + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	out->errors = p;
	char *msg = sp_asprintf("line %d, column %d: %s", e->line, e->col, e->msg);
	if (!msg)
		return -ENOMEM;
	p[out->n_errors].item = sp_strdup(item);
	p[out->n_errors].message = msg;
	if (!p[out->n_errors].item) {
		sp_free(msg);
		return -ENOMEM;
	}
	out->n_errors++;
	return 0;
}

/* The report names a program error by the program's start (one line). */
static char *program_name(const char *text, size_t len)
{
	size_t n = 0;
	while (n < len && n < 60 && text[n] != '\n')
		n++;
	char *s = sp_malloc(n + 4);
	if (!s)
		return NULL;
	memcpy(s, text, n);
	strcpy(s + n, n < len ? "..." : "");
	return s;
}

int sp_bt_parse_spec(const char *text, size_t len, struct sp_spec *out)
{
	struct bt_ast ast;
	struct bt_error err;
	struct bt_program *prog = NULL;
	struct sp_spec_item *items = NULL;
	size_t n = 0;
	int rc = 0;
	char *name = program_name(text, len);
	if (!name)
		return -ENOMEM;
	if (bt_parse(text, len, &ast, &err) != 0) {
		rc = add_program_error(out, name, &err);
		sp_free(name);
		return rc;
	}
	bool *ret = sp_calloc((size_t)ast.ngroups + 1, sizeof(bool));
	bool *usdt = sp_calloc((size_t)ast.ngroups + 1, sizeof(bool));
	struct bt_args_site *sites = sp_calloc((size_t)ast.ngroups + 1, sizeof(*sites));
	size_t total = 0;
	for (int g = 0; g < ast.ngroups; g++)
		total += (size_t)ast.groups[g].nprobes;
	items = sp_calloc(total + 1, sizeof(*items));
	if (!ret || !usdt || !items || !sites) {
		rc = -ENOMEM;
		bt_ast_free(&ast);
		goto out;
	}
	/* the probes first: a bad one is named before the code is looked at */
	for (int g = 0; g < ast.ngroups; g++) {
		struct bt_probe_ast *G = &ast.groups[g];
		size_t first = n;
		for (int k = 0; k < G->nprobes; k++) {
			char *msg = NULL;
			struct sp_spec_item *it = &items[n];
			err.line = G->probe_line[k];
			err.col = G->probe_col[k];
			int64_t ns;
			char serr[8];
			if (bt_special_probe(G->probes[k], &ns, serr, sizeof(serr)) != BT_PROBE_HIT)
				continue;   /* BEGIN, END, interval: no item; bt_compile checks them */
			int prc = sp_spec_parse_probe(G->probes[k], it, &msg);
			if (prc == 0 && it->kind == SP_KIND_USESSION) {
				sp_spec_item_free(it);
				prc = -EINVAL;
				msg = sp_strdup("usession probes are not part of bpftrace (use uprobe and uretprobe)");
			}
			bool r = prc == 0 && it->kind == SP_KIND_URETPROBE;
			if (prc == 0 && k > 0 && r != ret[g]) {
				sp_spec_item_free(it);
				prc = -EINVAL;
				msg = sp_strdup("a block's probes must all be entries or all returns (retval means one thing)");
			}
			if (prc == -ENOMEM) {
				rc = -ENOMEM;
				sp_free(msg);
				bt_ast_free(&ast);
				goto out;
			}
			if (prc) {
				snprintf(err.msg, sizeof(err.msg), "probe '%.200s': %s", G->probes[k], msg ? msg : "invalid");
				sp_free(msg);
				rc = add_program_error(out, name, &err);
				bt_ast_free(&ast);
				goto out;
			}
			ret[g] = r;
			usdt[g] |= it->kind == SP_KIND_USDT;
			it->action = SP_ACT_PROGRAM;
			n++;
		}
		/* args.NAME is one function's parameter: resolved at compile */
		struct sp_spec_item *it = &items[first];
		if (n - first != 1)
			sites[g].why = "a block of several probes (args.NAME needs one function)";
		else if (it->has_address || it->has_offset || !it->name || strpbrk(it->name, "*?["))
			sites[g].why = "the probe is not one function by name (no glob, offset or address)";
		else {
			sites[g].object = it->object;
			sites[g].func = it->name;
		}
	}
	if (n == 0) {
		err.line = err.col = 1;
		snprintf(err.msg, sizeof(err.msg),
			 "program: no uprobe, uretprobe or usdt probe (BEGIN, END and interval run in a probed process)");
		rc = add_program_error(out, name, &err);
		bt_ast_free(&ast);
		goto out;
	}
	bt_set_args_sites(sites, ast.ngroups);
	int crc = bt_compile(&ast, ret, usdt, &prog, &err);
	bt_set_args_sites(NULL, 0);
	if (crc != 0) {
		rc = add_program_error(out, name, &err);
		goto out;
	}
	struct sp_spec_item *grown = sp_realloc(out->items, (out->n_items + n) * sizeof(*grown));
	if (!grown) {
		rc = -ENOMEM;
		goto out;
	}
	out->items = grown;
	size_t i = 0;
	for (int g = 0; g < prog->nblocks; g++)
		for (int k = 0; prog->blocks[g].special == BT_PROBE_HIT && k < prog->ast.groups[g].nprobes; k++, i++) {
			items[i].program = &prog->blocks[g];
			atomic_fetch_add(&prog->refs, 1);
		}
	memcpy(out->items + out->n_items, items, n * sizeof(*items));
	out->n_items += n;
	n = 0;
out:
	for (size_t k = 0; k < n; k++)
		sp_spec_item_free(&items[k]);
	sp_free(items);
	sp_free(ret);
	sp_free(usdt);
	sp_free(sites);
	sp_free(name);
	bt_program_release(prog);   /* the items hold it now */
	return rc;
}

void sp_bt_item_release(struct bt_block *b)
{
	if (b)
		bt_program_release(b->prog);
}

