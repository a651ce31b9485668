/* bt_spec — a bpftrace program as spec items (see bt.h, spec.h).  Pure
 * (malloc only), so the spec's fuzz target covers it.
 *
 * The program is parsed and compiled whole; each probe of each
 * group is then an ordinary spec item (the probe text validated by the
 * spec parser, so objects, globs and USDT names mean what they mean in a
 * spec) with action SP_ACT_PROGRAM and a reference to its compiled block.
 * Any error, in the program or in one of its probes, yields no item at
 * all: the process runs unprobed and the error, with its line and column,
 * is in the report.
 */
#include "bt.h"
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_error(struct sp_spec *out, const char *item, const struct bt_error *e)
{
	struct sp_spec_error *p = realloc(out->errors, (out->n_errors + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	out->errors = p;
	char *msg = NULL;
	if (asprintf(&msg, "line %d, column %d: %s", e->line, e->col, e->msg) < 0)
		return -ENOMEM;
	p[out->n_errors].item = strdup(item);
	p[out->n_errors].message = msg;
	if (!p[out->n_errors].item) {
		free(msg);
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
	char *s = malloc(n + 4);
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
		rc = add_error(out, name, &err);
		free(name);
		return rc;
	}
	bool *ret = calloc((size_t)ast.ngroups + 1, sizeof(bool));
	bool *usdt = calloc((size_t)ast.ngroups + 1, sizeof(bool));
	size_t total = 0;
	for (int g = 0; g < ast.ngroups; g++)
		total += (size_t)ast.groups[g].nprobes;
	items = calloc(total + 1, sizeof(*items));
	if (!ret || !usdt || !items) {
		rc = -ENOMEM;
		bt_ast_free(&ast);
		goto out;
	}
	/* the probes first: a bad one is named before the code is looked at */
	for (int g = 0; g < ast.ngroups; g++) {
		struct bt_probe_ast *G = &ast.groups[g];
		for (int k = 0; k < G->nprobes; k++) {
			char *msg = NULL;
			struct sp_spec_item *it = &items[n];
			err.line = G->probe_line[k];
			err.col = G->probe_col[k];
			int prc = sp_spec_parse_probe(G->probes[k], it, &msg);
			if (prc == 0 && it->kind == SP_KIND_USESSION) {
				sp_spec_item_free(it);
				prc = -EINVAL;
				msg = strdup("usession probes are not part of bpftrace (use uprobe and uretprobe)");
			}
			bool r = prc == 0 && it->kind == SP_KIND_URETPROBE;
			if (prc == 0 && k > 0 && r != ret[g]) {
				sp_spec_item_free(it);
				prc = -EINVAL;
				msg = strdup("a block's probes must all be entries or all returns (retval means one thing)");
			}
			if (prc == -ENOMEM) {
				rc = -ENOMEM;
				free(msg);
				bt_ast_free(&ast);
				goto out;
			}
			if (prc) {
				snprintf(err.msg, sizeof(err.msg), "probe '%.80s': %s", G->probes[k], msg ? msg : "invalid");
				free(msg);
				rc = add_error(out, name, &err);
				bt_ast_free(&ast);
				goto out;
			}
			ret[g] = r;
			usdt[g] |= it->kind == SP_KIND_USDT;
			it->action = SP_ACT_PROGRAM;
			n++;
		}
	}
	if (bt_compile(&ast, ret, usdt, &prog, &err) != 0) {
		rc = add_error(out, name, &err);
		goto out;
	}
	struct sp_spec_item *grown = realloc(out->items, (out->n_items + n) * sizeof(*grown));
	if (!grown) {
		rc = -ENOMEM;
		goto out;
	}
	out->items = grown;
	size_t i = 0;
	for (int g = 0; g < prog->nblocks; g++)
		for (int k = 0; k < prog->ast.groups[g].nprobes; k++, i++) {
			items[i].program = &prog->blocks[g];
			atomic_fetch_add(&prog->refs, 1);
		}
	memcpy(out->items + out->n_items, items, n * sizeof(*items));
	out->n_items += n;
	n = 0;
out:
	for (size_t k = 0; k < n; k++)
		sp_spec_item_free(&items[k]);
	free(items);
	free(ret);
	free(usdt);
	free(name);
	bt_program_release(prog);   /* the items hold it now */
	return rc;
}

void sp_bt_item_release(struct bt_block *b)
{
	if (b)
		bt_program_release(b->prog);
}

