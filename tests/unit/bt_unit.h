/* bt_unit — the bpftrace tests' fixture (test_bt, test_bt_jit): compile(TEXT)
 * parses a one-program spec and gives its first item's program, with a
 * reference of the test's own (the spec is freed). */
#ifndef SP_BT_UNIT_H
#define SP_BT_UNIT_H

#include <criterion/criterion.h>

#include "bt.h"
#include "heap.h"
#include "spec.h"

static inline struct bt_program *compile(const char *text)
{
	struct sp_spec s = { 0 };
	cr_assert(sp_spec_parse(text, &s) == 0);
	cr_assert(s.n_errors == 0, "%s: %s", text, s.n_errors ? s.errors[0].message : "");
	cr_assert(s.n_items >= 1);
	struct bt_program *p = s.items[0].program->prog;
	atomic_fetch_add(&p->refs, 1);
	sp_spec_free(&s);
	return p;
}

#endif
