/* fuzz_spec — the UPROBE_SPEC parser on arbitrary bytes.
 *
 * Properties beyond "no crash, no leak, no UB" (ASan/UBSan):
 *   - every item and error carries its text and a message;
 *   - kinds and actions are in range, and the fields each kind needs are set;
 *   - an item's own text parses again to exactly one item with the same
 *     fields (the report's "spec" names what was attached);
 *   - sp_spec_parse_probe agrees: it accepts the probe part of every item.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_spec: " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_item(const struct sp_spec_item *it)
{
	CHECK(it->text && it->probe_text, "item without text");
	CHECK(it->kind <= SP_KIND_USDT, "kind %d out of range", (int)it->kind);
	CHECK(it->action <= SP_ACT_PROGRAM, "action %d out of range", (int)it->action);
	CHECK((it->action == SP_ACT_PROGRAM) == (it->program != NULL), "item '%s': program and block disagree", it->text);
	CHECK(!it->internal, "parser set 'internal' on %s", it->text);
	if (it->kind == SP_KIND_USDT)
		CHECK(it->provider && it->name, "usdt item '%s' without provider/name", it->text);
	else
		CHECK(it->has_address != (it->name != NULL),
		      "item '%s': exactly one of address and symbol expected", it->text);
	if (it->action == SP_ACT_PLUGIN)
		CHECK(it->plugin_path && it->plugin_fn, "plugin item '%s' without path/fn", it->text);
}

static void check_reparse(const struct sp_spec_item *it)
{
	struct sp_spec again = { 0 };

	if (it->action == SP_ACT_PROGRAM)
		return;   /* a program's probe: its text is the probe's, its code the block's (fuzz_bt) */
	if (sp_spec_parse(it->text, &again) != 0)
		return;                            /* -ENOMEM only */
	CHECK(again.n_items == 1 && again.n_errors == 0,
	      "item '%s' parses again to %zu items and %zu errors", it->text,
	      again.n_items, again.n_errors);
	const struct sp_spec_item *b = &again.items[0];
	CHECK(strcmp(b->text, it->text) == 0 && b->kind == it->kind && b->action == it->action &&
	      same_str(b->object, it->object) && same_str(b->provider, it->provider) &&
	      same_str(b->name, it->name) && b->has_offset == it->has_offset &&
	      b->offset == it->offset && b->has_address == it->has_address &&
	      b->address == it->address && same_str(b->plugin_path, it->plugin_path) &&
	      same_str(b->plugin_fn, it->plugin_fn),
	      "item '%s' parses again to different fields", it->text);
	sp_spec_free(&again);

	struct sp_spec_item p;
	char *err = NULL;
	memset(&p, 0, sizeof(p));
	int rc = sp_spec_parse_probe(it->probe_text, &p, &err);
	if (rc == 0) {
		CHECK(p.kind == it->kind && same_str(p.name, it->name) &&
		      same_str(p.object, it->object), "probe part '%s' parses differently",
		      it->probe_text);
		sp_spec_item_free(&p);
	} else {
		/* only an allocation failure may refuse what sp_spec_parse accepted */
		CHECK(!err || rc == -12, "sp_spec_parse_probe refuses '%s' (of item '%s'): %s",
		      it->probe_text, it->text, err ? err : "");
	}
	free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	struct sp_spec s = { 0 };
	if (sp_spec_parse(text, &s) == 0) {
		for (size_t i = 0; i < s.n_items; i++) {
			check_item(&s.items[i]);
			check_reparse(&s.items[i]);
		}
		for (size_t i = 0; i < s.n_errors; i++)
			CHECK(s.errors[i].item && s.errors[i].message && s.errors[i].message[0],
			      "error without item or message");
		sp_spec_free(&s);
	}

	/* the single-probe entry point on the whole input */
	struct sp_spec_item it;
	char *err = NULL;
	memset(&it, 0, sizeof(it));
	if (sp_spec_parse_probe(text, &it, &err) == 0) {
		CHECK(it.kind <= SP_KIND_USDT, "probe kind out of range");
		sp_spec_item_free(&it);
	}
	free(err);
	free(text);
	return 0;
}
