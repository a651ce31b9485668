/* bt_jitplan — which blocks of a compiled bpftrace program can run as
 * native code in the trampoline (actions/bt_jit.c writes that code), and
 * why the others cannot.  Pure analysis of the resolved tree: no code is
 * written here.
 *
 * The subset is what a hit can do with the probed code's registers, a few
 * scratch registers and one thread's own memory, and nothing else:
 *   - a predicate and statements over arg0-arg7, pid, tid, integer literals,
 *     + - * & | ^, << and >> by a literal, == != < > <= >= (signed or not
 *     as bpftrace's rules make them), && || ! ~ unary -, ?:;
 *   - statements: if/else, and updates of maps without keys:
 *     count() sum() min() max() avg() stats() hist() lhist(), @m++, @m--,
 *     @m += x, @m -= x;
 *   - uprobe blocks only (a uretprobe block runs in the return trampoline,
 *     a usdt block reads its arguments through the note), of a program
 *     that never calls exit().
 * A map a compiled block updates is kept per thread (bt_shard.h), as a
 * keyed map the evaluator updates is, and must
 * be one whose value the program never reads back: no @m in an
 * expression, no delete(), no clear() (print() is fine: it merges).  Any
 * block outside the subset runs in the evaluator as before, on both paths.
 */
#ifndef SP_BT_JITPLAN_H
#define SP_BT_JITPLAN_H

#include <stdbool.h>
#include "bt.h"

/* May block B of program P be compiled?  *WHY (when not) says what keeps
 * it out, for the debug log and the tests. */
bool bt_jit_eligible(const struct bt_program *p, const struct bt_block *b, const char **why);

/* May map M, with keys or without, be kept per thread (bt_shard.h: only
 * updated, never read, cleared or deleted anywhere in P)?  A compiled
 * block also needs it without keys (its code does not hash). */
bool bt_jit_map_shardable(const struct bt_program *p, const struct bt_map *m);

#endif
