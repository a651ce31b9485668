/* fuzz_bt — the bpftrace program parser and compiler (bt_parse, bt_compile,
 * bt_spec) on arbitrary bytes, through the spec entry point a '{' selects.
 *
 * Properties beyond "no crash, no leak, no UB" (ASan/UBSan):
 *   - a program either yields items and no error, or one error and no item
 *     (nothing of a bad program is ever attached);
 *   - an error names a line and a column inside the text (or just past its
 *     end) and says something;
 *   - every item is a program item with its compiled block, a probe kind
 *     in range, and the fields its kind needs;
 *   - the compiled program's maps print (bt_print_all) without touching
 *     anything they should not: empty maps, every kind's layout;
 *   - the native-code plan (bt_jitplan) decides every block, and gives a
 *     reason for each one it keeps out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bt.h"
#include "bt_jitplan.h"
#include "spec.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_bt: " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a program: make sure the text takes the program path */
	char *text = malloc(size + 2);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '{';
	text[size + 1] = '\0';
	size_t len = strlen(text);   /* up to the first NUL (UPROBE_SPEC is a C string) */
	if (!memchr(text, '{', len)) {
		free(text);
		return 0;
	}

	int lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';

	struct sp_spec s = { 0 };
	if (sp_spec_parse(text, &s) == 0) {
		CHECK((s.n_items > 0) != (s.n_errors > 0), "%zu items and %zu errors", s.n_items, s.n_errors);
		CHECK(s.n_errors <= 1, "%zu errors (the first stops the parse)", s.n_errors);
		for (size_t i = 0; i < s.n_errors; i++) {
			int line = 0, col = 0;
			CHECK(s.errors[i].item && s.errors[i].message, "error without item or message");
			CHECK(sscanf(s.errors[i].message, "line %d, column %d: ", &line, &col) == 2,
			      "error without line and column: %s", s.errors[i].message);
			CHECK(line >= 1 && line <= lines && col >= 1 && (size_t)col <= len + 1,
			      "error position %d:%d outside the text (%d lines): %s", line, col, lines,
			      s.errors[i].message);
			CHECK(strlen(s.errors[i].message) > strlen("line 1, column 1: "), "empty message");
		}
		struct bt_program *prog = NULL;
		for (size_t i = 0; i < s.n_items; i++) {
			const struct sp_spec_item *it = &s.items[i];
			CHECK(it->action == SP_ACT_PROGRAM && it->program, "item '%s' without its block", it->text);
			CHECK(it->kind == SP_KIND_UPROBE || it->kind == SP_KIND_URETPROBE || it->kind == SP_KIND_USDT,
			      "item '%s': kind %d", it->text, (int)it->kind);
			CHECK(it->text && it->probe_text, "item without text");
			if (it->kind == SP_KIND_USDT)
				CHECK(it->provider && it->name, "usdt item '%s' without provider/name", it->text);
			CHECK(!prog || prog == it->program->prog, "items of one text in two programs");
			prog = it->program->prog;
		}
		if (prog) {
			for (int g = 0; g < prog->nblocks; g++) {
				const char *why = NULL;
				if (!bt_jit_eligible(prog, &prog->blocks[g], &why))
					CHECK(why && *why, "block %d kept out without a reason", g);
			}
			struct bt_buf b = { 0 };
			bt_print_all(&b, prog);
			CHECK(b.n >= 2 && memcmp(b.p, "\n\n", 2) == 0, "output does not start with two newlines");
			free(b.p);
		}
		sp_spec_free(&s);
	}
	free(text);
	return 0;
}
