/* bt_parse — the program text to a syntax tree (see bt.h).
 *
 * A hand-written lexer and recursive-descent parser over bpftrace's
 * grammar for the subset: probe groups `probe[, probe…] [/pred/] { stmts }`,
 * statements separated by ';', C's expression precedence.  Probe texts are
 * taken raw (a path holds '/' and ':') up to blanks, ',' or '{'; the spec
 * parser validates them afterwards.  The first error stops the parse: its
 * line, column and the construct met are all a user needs, and a second
 * error after a bad token is mostly noise.  Pure: malloc only.
 */
#include "bt.h"
#include "heap.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tk { T_EOF, T_INT, T_STR, T_IDENT, T_MAPN, T_VARN, T_PUNCT };

struct lexer {
	const char *s;
	size_t n, i;
	int line, col;
	/* the current token */
	enum tk t;
	int op;                  /* T_PUNCT: char or BT_OP_* */
	int64_t ival;
	char *text;              /* T_STR (unescaped), T_IDENT, T_MAPN ("@x"), T_VARN ("$x") */
	size_t tlen;
	int tline, tcol;
	struct bt_error *err;
	bool in_pred;            /* '/' ends the predicate: division needs parentheses */
	jmp_buf fail;
	/* every node made, to free them all after an error */
	struct bt_node **made;
	size_t nmade, capmade;
};

__attribute__((format(printf, 4, 5), noreturn))
static void fail_at(struct lexer *L, int line, int col, const char *fmt, ...)
{
	va_list ap;
	L->err->line = line;
	L->err->col = col;
	va_start(ap, fmt);
	vsnprintf(L->err->msg, sizeof(L->err->msg), fmt, ap);
	va_end(ap);
	longjmp(L->fail, 1);
}

#define FAIL(L, ...) fail_at(L, (L)->tline, (L)->tcol, __VA_ARGS__)

static void *xmalloc(struct lexer *L, size_t n)
{
	void *p = sp_calloc(1, n ? n : 1);
	if (!p)
		fail_at(L, L->line, L->col, "out of memory");
	return p;
}

static int peekc(struct lexer *L, size_t k)
{
	return L->i + k < L->n ? (unsigned char)L->s[L->i + k] : -1;
}

static void adv(struct lexer *L)
{
	if (L->i < L->n) {
		if (L->s[L->i] == '\n') {
			L->line++;
			L->col = 1;
		} else
			L->col++;
		L->i++;
	}
}

static bool is_id0(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_dig(int c) { return c >= '0' && c <= '9'; }
static bool is_id(int c) { return is_id0(c) || is_dig(c); }
static bool is_blank(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Blanks and comments ('//' to the end of the line, and C comments). */
static void skip_ws(struct lexer *L)
{
	for (;;) {
		int c = peekc(L, 0);
		if (is_blank(c)) {
			adv(L);
		} else if (c == '/' && peekc(L, 1) == '/') {
			while (peekc(L, 0) != -1 && peekc(L, 0) != '\n')
				adv(L);
		} else if (c == '/' && peekc(L, 1) == '*') {
			int line = L->line, col = L->col;
			adv(L);
			adv(L);
			while (!(peekc(L, 0) == '*' && peekc(L, 1) == '/')) {
				if (peekc(L, 0) == -1)
					fail_at(L, line, col, "comment: '/*' is never closed");
				adv(L);
			}
			adv(L);
			adv(L);
		} else
			return;
	}
}

static char *take(struct lexer *L, size_t start, size_t len)
{
	char *p = xmalloc(L, len + 1);
	memcpy(p, L->s + start, len);
	return p;
}

static void free_tok(struct lexer *L)
{
	sp_free(L->text);
	L->text = NULL;
}

static void next(struct lexer *L)
{
	free_tok(L);
	skip_ws(L);
	L->tline = L->line;
	L->tcol = L->col;
	int c = peekc(L, 0);
	if (c == -1) {
		L->t = T_EOF;
		return;
	}
	if (c == 0)
		FAIL(L, "a NUL byte in the program");
	size_t start = L->i;
	if (is_dig(c)) {
		uint64_t v = 0;
		int base = 10;
		if (c == '0' && (peekc(L, 1) == 'x' || peekc(L, 1) == 'X')) {
			base = 16;
			adv(L);
			adv(L);
			if (!((peekc(L, 0) >= '0' && peekc(L, 0) <= '9') || ((peekc(L, 0) | 32) >= 'a' && (peekc(L, 0) | 32) <= 'f')))
				FAIL(L, "integer literal: '0x' without hex digits");
		}
		for (;;) {
			int d = peekc(L, 0);
			int dv;
			if (is_dig(d))
				dv = d - '0';
			else if (base == 16 && (d | 32) >= 'a' && (d | 32) <= 'f')
				dv = (d | 32) - 'a' + 10;
			else
				break;
			if (v > (UINT64_MAX - (uint64_t)dv) / (uint64_t)base)
				FAIL(L, "integer literal: more than 64 bits");
			v = v * (uint64_t)base + (uint64_t)dv;
			adv(L);
		}
		if (is_id0(peekc(L, 0)))
			FAIL(L, "integer literal: unexpected '%c' after the digits", peekc(L, 0));
		L->t = T_INT;
		L->ival = (int64_t)v;
		return;
	}
	if (is_id0(c)) {
		while (is_id(peekc(L, 0)))
			adv(L);
		L->t = T_IDENT;
		L->text = take(L, start, L->i - start);
		return;
	}
	if (c == '@' || c == '$') {
		adv(L);
		while (is_id(peekc(L, 0)))
			adv(L);
		if (c == '$' && L->i - start == 1)
			FAIL(L, "scratch variable: '$' without a name");
		if (c == '$' && is_dig((unsigned char)L->s[start + 1]))
			FAIL(L, "positional parameter '%.*s' is not supported (the program runs in the process: no command line)",
			     (int)(L->i - start), L->s + start);
		L->t = c == '@' ? T_MAPN : T_VARN;
		L->text = take(L, start, L->i - start);
		return;
	}
	if (c == '"') {
		adv(L);
		char *buf = xmalloc(L, L->n - L->i + 1);
		size_t o = 0;
		for (;;) {
			int d = peekc(L, 0);
			if (d == -1 || d == '\n') {
				sp_free(buf);
				FAIL(L, "string literal: no closing '\"'");
			}
			int eline = L->line, ecol = L->col;   /* the escape's backslash */
			adv(L);
			if (d == '"')
				break;
			if (d == '\\') {
				int e = peekc(L, 0);
				adv(L);
				switch (e) {
				case 'n': d = '\n'; break;
				case 't': d = '\t'; break;
				case 'r': d = '\r'; break;
				case '\\': d = '\\'; break;
				case '"': d = '"'; break;
				case '0': d = 0; break;
				default:
					sp_free(buf);
					fail_at(L, eline, ecol, "string literal: unknown escape '\\%c'", e > 31 && e < 127 ? e : '?');
				}
			}
			buf[o++] = (char)d;
		}
		buf[o] = 0;
		L->t = T_STR;
		L->text = buf;
		L->tlen = o;
		return;
	}
	static const struct { const char *s; int op; } two[] = {
		{ "==", BT_OP_EQ }, { "!=", BT_OP_NE }, { "<=", BT_OP_LE }, { ">=", BT_OP_GE },
		{ "&&", BT_OP_AND }, { "||", BT_OP_OR }, { "<<", BT_OP_SHL }, { ">>", BT_OP_SHR },
		{ "++", BT_OP_INC }, { "--", BT_OP_DEC }, { "+=", BT_OP_ADDEQ }, { "-=", BT_OP_SUBEQ },
		{ "->", BT_OP_ARROW },
	};
	for (size_t k = 0; k < sizeof(two) / sizeof(two[0]); k++)
		if (c == two[k].s[0] && peekc(L, 1) == two[k].s[1]) {
			adv(L);
			adv(L);
			L->t = T_PUNCT;
			L->op = two[k].op;
			return;
		}
	if (strchr("{}()[];,/?:=+-*%!<>&|^~.", c)) {
		adv(L);
		L->t = T_PUNCT;
		L->op = c;
		return;
	}
	if (c > 32 && c < 127)
		FAIL(L, "unexpected character '%c'", c);
	FAIL(L, "unexpected byte 0x%02x", c);
}

const char *bt_op_name(int op)
{
	static char one[2][2];
	static const char *const names[] = { "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "++", "--", "+=", "-=",
					     "->" };
	if (op >= BT_OP_EQ && op <= BT_OP_ARROW)
		return names[op - BT_OP_EQ];
	char (*b)[2] = &one[op & 1];
	(*b)[0] = (char)op;
	(*b)[1] = 0;
	return *b;
}

/* What the current token is, for "expected X, found Y". */
static const char *tok_desc(struct lexer *L, char *buf, size_t n)
{
	switch (L->t) {
	case T_EOF: return "the end of the program";
	case T_INT: snprintf(buf, n, "integer %lld", (long long)L->ival); return buf;
	case T_STR: return "a string literal";
	case T_IDENT: case T_MAPN: case T_VARN: snprintf(buf, n, "'%.60s'", L->text); return buf;
	case T_PUNCT: snprintf(buf, n, "'%s'", bt_op_name(L->op)); return buf;
	}
	return "?";
}

static bool is_p(struct lexer *L, int op) { return L->t == T_PUNCT && L->op == op; }

static void expect(struct lexer *L, int op, const char *where)
{
	char b[80];
	if (!is_p(L, op))
		FAIL(L, "%s: expected '%s', found %s", where, bt_op_name(op), tok_desc(L, b, sizeof(b)));
	next(L);
}

static struct bt_node *node(struct lexer *L, enum bt_nk k, int line, int col)
{
	if (L->nmade == L->capmade) {
		size_t nc = L->capmade ? L->capmade * 2 : 64;
		struct bt_node **p = sp_realloc(L->made, nc * sizeof(*p));
		if (!p)
			fail_at(L, line, col, "out of memory");
		L->made = p;
		L->capmade = nc;
	}
	struct bt_node *n = xmalloc(L, sizeof(*n));
	L->made[L->nmade++] = n;
	n->kind = k;
	n->line = line;
	n->col = col;
	return n;
}

static void push_arg(struct lexer *L, struct bt_node *n, struct bt_node *a)
{
	struct bt_node **p = sp_realloc(n->args, (size_t)(n->nargs + 1) * sizeof(*p));
	if (!p)
		fail_at(L, n->line, n->col, "out of memory");
	n->args = p;
	n->args[n->nargs++] = a;
}

static char *steal(struct lexer *L)
{
	char *t = L->text;
	L->text = NULL;
	return t;
}

static struct bt_node *expr(struct lexer *L);

static void call_args(struct lexer *L, struct bt_node *n, int close)
{
	if (is_p(L, close)) {
		next(L);
		return;
	}
	for (;;) {
		push_arg(L, n, expr(L));
		if (is_p(L, ','))
			next(L);
		else {
			expect(L, close, close == ')' ? "call arguments" : "map keys");
			return;
		}
	}
}

static struct bt_node *primary(struct lexer *L)
{
	int line = L->tline, col = L->tcol;
	char b[80];
	struct bt_node *n;
	switch (L->t) {
	case T_INT:
		n = node(L, BN_INT, line, col);
		n->ival = L->ival;
		next(L);
		return n;
	case T_STR:
		n = node(L, BN_STR, line, col);
		n->slen = L->tlen;
		n->name = steal(L);
		next(L);
		return n;
	case T_VARN:
		n = node(L, BN_VAR, line, col);
		n->name = steal(L);
		next(L);
		return n;
	case T_MAPN:
		n = node(L, BN_MAP, line, col);
		n->name = steal(L);
		next(L);
		if (is_p(L, '[')) {
			next(L);
			if (is_p(L, ']'))
				FAIL(L, "map keys: '[]' with no key");
			call_args(L, n, ']');
		}
		return n;
	case T_IDENT:
		n = node(L, BN_CALL, line, col);
		n->name = steal(L);
		next(L);
		if (is_p(L, '(')) {
			next(L);
			call_args(L, n, ')');
			n->ival = 1;   /* written as a call */
		} else
			n->kind = BN_BUILTIN;
		return n;
	case T_PUNCT:
		if (L->op == '(') {
			bool in_pred = L->in_pred;
			L->in_pred = false;
			next(L);
			n = expr(L);
			expect(L, ')', "parenthesised expression");
			L->in_pred = in_pred;
			return n;
		}
		break;
	default:
		break;
	}
	FAIL(L, "expression: expected a value, found %s", tok_desc(L, b, sizeof(b)));
}

static struct bt_node *postfix(struct lexer *L)
{
	struct bt_node *n = primary(L);
	if (L->t == T_PUNCT && (L->op == '.' || L->op == BT_OP_ARROW)) {
		const char *acc = L->op == '.' ? "." : "->";
		char b[80];
		if (n->kind != BN_BUILTIN || strcmp(n->name, "args") != 0)
			FAIL(L, "field access '%s': only args%sNAME (no structs)", acc, acc);
		/* args.NAME (bpftrace 0.18+) and args->NAME (0.17): a parameter */
		next(L);
		if (L->t != T_IDENT)
			FAIL(L, "args%s: expected a parameter name, found %s", acc, tok_desc(L, b, sizeof(b)));
		n->kind = BN_ARGS;
		sp_free(n->name);
		n->name = steal(L);
		next(L);
		if (L->t == T_PUNCT && (L->op == '.' || L->op == BT_OP_ARROW))
			FAIL(L, "field access '%s': args%s%s is an integer (no structs)", bt_op_name(L->op), acc, n->name);
	}
	return n;
}

static struct bt_node *unary(struct lexer *L)
{
	if (L->t == T_PUNCT && (L->op == '!' || L->op == '-' || L->op == '~')) {
		struct bt_node *n = node(L, BN_UN, L->tline, L->tcol);
		n->op = L->op;
		next(L);
		n->a = unary(L);
		return n;
	}
	if (L->t == T_PUNCT && (L->op == '*' || L->op == '&'))
		FAIL(L, "unary '%s': pointers are not supported", bt_op_name(L->op));
	if (L->t == T_PUNCT && (L->op == BT_OP_INC || L->op == BT_OP_DEC))
		FAIL(L, "prefix '%s': write it after the map (@m[k]%s)", bt_op_name(L->op), bt_op_name(L->op));
	return postfix(L);
}

/* Binary levels, loosest first. */
static const int levels[][5] = {
	{ BT_OP_OR }, { BT_OP_AND }, { '|' }, { '^' }, { '&' }, { BT_OP_EQ, BT_OP_NE },
	{ '<', '>', BT_OP_LE, BT_OP_GE }, { BT_OP_SHL, BT_OP_SHR }, { '+', '-' }, { '*', '/', '%' },
};
#define NLEVELS ((int)(sizeof(levels) / sizeof(levels[0])))

static struct bt_node *binary(struct lexer *L, int lvl)
{
	if (lvl == NLEVELS)
		return unary(L);
	struct bt_node *l = binary(L, lvl + 1);
	for (;;) {
		bool match = false;
		for (int k = 0; k < 5 && levels[lvl][k]; k++)
			match |= L->t == T_PUNCT && L->op == levels[lvl][k] && !(L->op == '/' && L->in_pred);
		if (!match)
			return l;
		struct bt_node *n = node(L, BN_BIN, L->tline, L->tcol);
		n->op = L->op;
		next(L);
		n->a = l;
		n->b = binary(L, lvl + 1);
		l = n;
	}
}

static struct bt_node *expr(struct lexer *L)
{
	struct bt_node *c = binary(L, 0);
	if (is_p(L, '?')) {
		struct bt_node *n = node(L, BN_TERN, L->tline, L->tcol);
		next(L);
		n->a = c;
		n->b = expr(L);
		expect(L, ':', "ternary");
		n->c = expr(L);
		return n;
	}
	return c;
}

static struct bt_node *block(struct lexer *L, bool top);

static struct bt_node *statement(struct lexer *L)
{
	int line = L->tline, col = L->tcol;
	char b[80];
	if (L->t == T_IDENT && strcmp(L->text, "if") == 0) {
		struct bt_node *n = node(L, BN_IF, line, col);
		next(L);
		expect(L, '(', "if");
		n->a = expr(L);
		expect(L, ')', "if");
		n->b = block(L, false);
		if (L->t == T_IDENT && strcmp(L->text, "else") == 0) {
			next(L);
			if (L->t == T_IDENT && strcmp(L->text, "if") == 0) {
				/* else if: a block of one statement */
				struct bt_node *blk = node(L, BN_EXPR, L->tline, L->tcol);
				push_arg(L, blk, statement(L));
				n->c = blk;
			} else
				n->c = block(L, false);
		}
		return n;
	}
	if (L->t == T_IDENT && (strcmp(L->text, "unroll") == 0 || strcmp(L->text, "while") == 0 ||
				strcmp(L->text, "for") == 0 || strcmp(L->text, "return") == 0))
		FAIL(L, "'%s' is not supported (the subset has if/else)", L->text);
	if (L->t == T_IDENT && strcmp(L->text, "delete") == 0) {
		struct bt_node *n = node(L, BN_DELETE, line, col);
		next(L);
		expect(L, '(', "delete");
		if (L->t != T_MAPN)
			FAIL(L, "delete: expected a map element (@m[k]), found %s", tok_desc(L, b, sizeof(b)));
		n->a = primary(L);
		expect(L, ')', "delete");
		return n;
	}
	struct bt_node *e = expr(L);
	if (is_p(L, '=') || is_p(L, BT_OP_ADDEQ) || is_p(L, BT_OP_SUBEQ)) {
		if (e->kind != BN_MAP && e->kind != BN_VAR)
			FAIL(L, "assignment: only to a map (@m, @m[k]) or a scratch variable ($x)");
		int op = L->op;
		struct bt_node *n = node(L, BN_ASSIGN, L->tline, L->tcol);
		next(L);
		n->a = e;
		n->b = expr(L);
		n->op = op == '=' ? '=' : op == BT_OP_ADDEQ ? '+' : '-';   /* x += v: x = x + v */
		return n;
	}
	if (is_p(L, BT_OP_INC) || is_p(L, BT_OP_DEC)) {
		if (e->kind != BN_MAP && e->kind != BN_VAR)
			FAIL(L, "'%s': only after a map (@m[k]%s) or a scratch variable", bt_op_name(L->op), bt_op_name(L->op));
		struct bt_node *n = node(L, BN_INCR, line, col);
		n->op = L->op == BT_OP_INC ? 1 : -1;
		n->a = e;
		next(L);
		return n;
	}
	struct bt_node *n = node(L, BN_EXPR, line, col);
	n->a = e;
	return n;
}

/* '{' statements '}' : a BN_EXPR holder whose args are the statements. */
static struct bt_node *block(struct lexer *L, bool top)
{
	struct bt_node *blk = node(L, BN_EXPR, L->tline, L->tcol);
	expect(L, '{', "block");
	while (!is_p(L, '}')) {
		if (L->t == T_EOF)
			FAIL(L, "block: '{' at line %d, column %d is never closed", blk->line, blk->col);
		if (is_p(L, ';')) {
			next(L);
			continue;
		}
		struct bt_node *s = statement(L);
		push_arg(L, blk, s);
		if (is_p(L, ';')) {
			next(L);
			continue;
		}
		if (!is_p(L, '}') && s->kind != BN_IF) {
			char b[80];
			FAIL(L, "statement: expected ';' or '}', found %s", tok_desc(L, b, sizeof(b)));
		}
	}
	if (!top)   /* at the top level the next probe is read raw, from L->i */
		next(L);
	return blk;
}

/* A probe as written: up to blanks, ',' or '{'. */
static char *probe_text(struct lexer *L)
{
	size_t start = L->i;
	while (L->i < L->n) {
		int c = peekc(L, 0);
		if (is_blank(c) || c == ',' || c == '{' || c == 0)
			break;
		adv(L);
	}
	return take(L, start, L->i - start);
}

static void group(struct lexer *L, struct bt_probe_ast *g)
{
	for (;;) {
		skip_ws(L);
		int line = L->line, col = L->col;
		int c = peekc(L, 0);
		if (c == '{' || c == '/' || c == ',' || c == -1)
			fail_at(L, line, col, "probe: expected a probe (uprobe:OBJECT:FUNCTION), found %s",
				c == -1 ? "the end of the program" : c == '{' ? "'{'" : c == '/' ? "'/'" : "','");
		char *p = probe_text(L);
		if (strncmp(p, "kprobe:", 7) == 0 || strncmp(p, "kretprobe:", 10) == 0 || strncmp(p, "tracepoint:", 11) == 0 || strncmp(p, "profile:", 8) == 0) {
			char q[64];
			snprintf(q, sizeof(q), "%.40s", p);
			sp_free(p);
			fail_at(L, line, col,
				"probe '%s': not supported in the process (uprobe, uretprobe, usdt, BEGIN, END and interval only)",
				q);
		}
		int k = g->nprobes;
		char **np = sp_realloc(g->probes, (size_t)(k + 1) * sizeof(*np));
		if (np)
			g->probes = np;
		int *nl = np ? sp_realloc(g->probe_line, (size_t)(k + 1) * sizeof(int)) : NULL;
		if (nl)
			g->probe_line = nl;
		int *nc = nl ? sp_realloc(g->probe_col, (size_t)(k + 1) * sizeof(int)) : NULL;
		if (nc)
			g->probe_col = nc;
		if (!nc) {
			sp_free(p);
			fail_at(L, line, col, "out of memory");
		}
		g->probes[k] = p;
		g->probe_line[k] = line;
		g->probe_col[k] = col;
		g->nprobes++;
		skip_ws(L);
		if (peekc(L, 0) == ',') {
			adv(L);
			continue;
		}
		break;
	}
	next(L);
	if (is_p(L, '/')) {
		next(L);
		/* as in bpftrace, the next '/' outside parentheses ends it */
		L->in_pred = true;
		g->pred = expr(L);
		L->in_pred = false;
		expect(L, '/', "predicate");
	}
	g->block = block(L, true);
	free_tok(L);
}

int bt_parse(const char *text, size_t len, struct bt_ast *ast, struct bt_error *err)
{
	struct lexer L = { .s = text, .n = len, .line = 1, .col = 1, .err = err };
	memset(ast, 0, sizeof(*ast));
	memset(err, 0, sizeof(*err));
	if (setjmp(L.fail)) {
		free_tok(&L);
		for (size_t i = 0; i < L.nmade; i++) {
			sp_free(L.made[i]->name);
			sp_free(L.made[i]->args);
			sp_free(L.made[i]);
		}
		sp_free(L.made);
		L.made = NULL;
		L.nmade = 0;
		for (int g = 0; g < ast->ngroups; g++) {
			for (int k = 0; k < ast->groups[g].nprobes; k++)
				sp_free(ast->groups[g].probes[k]);
			sp_free(ast->groups[g].probes);
			sp_free(ast->groups[g].probe_line);
			sp_free(ast->groups[g].probe_col);
		}
		sp_free(ast->groups);
		memset(ast, 0, sizeof(*ast));
		return -1;
	}
	for (;;) {
		skip_ws(&L);
		if (L.i >= L.n)
			break;
		struct bt_probe_ast *ng = sp_realloc(ast->groups, (size_t)(ast->ngroups + 1) * sizeof(*ng));
		if (!ng)
			fail_at(&L, L.line, L.col, "out of memory");
		ast->groups = ng;
		struct bt_probe_ast *g = &ast->groups[ast->ngroups++];
		memset(g, 0, sizeof(*g));
		g->line = L.line;
		g->col = L.col;
		group(&L, g);
	}
	if (ast->ngroups == 0)
		fail_at(&L, 1, 1, "program: no probe");
	sp_free(L.made);   /* the nodes now belong to the tree */
	return 0;
}

/* Every node has one parent. */
void bt_node_free(struct bt_node *n)
{
	if (!n)
		return;
	bt_node_free(n->a);
	bt_node_free(n->b);
	bt_node_free(n->c);
	for (int i = 0; i < n->nargs; i++)
		bt_node_free(n->args[i]);
	sp_free(n->args);
	sp_free(n->name);
	sp_free(n);
}

void bt_ast_free(struct bt_ast *ast)
{
	for (int g = 0; g < ast->ngroups; g++) {
		struct bt_probe_ast *G = &ast->groups[g];
		for (int k = 0; k < G->nprobes; k++)
			sp_free(G->probes[k]);
		sp_free(G->probes);
		sp_free(G->probe_line);
		sp_free(G->probe_col);
		bt_node_free(G->pred);
		bt_node_free(G->block);
	}
	sp_free(ast->groups);
	memset(ast, 0, sizeof(*ast));
}
