/* bt_run — a compiled bpftrace program in the runtime (see bt.h).
 *
 * A block's probe calls sp_bt_handler.  The first attach of a program
 * makes it active: its output goes to a copy of the process's stdout taken
 * then (bpftrace prints to its stdout; the copy survives a program that
 * closes its own), and at exit (sp_bt_exit, from the exit report) its maps
 * are printed there in bpftrace's format.  A map that refused updates for
 * want of room says so in the report's errors.
 */
#ifndef SP_BT_RUN_H
#define SP_BT_RUN_H

#include "spec.h"

struct selfprobe_ctx;

/* Attach ITEM (action SP_ACT_PROGRAM): as sp_probe_attach_item. */
long sp_bt_attach_item(const struct sp_spec_item *item);
/* The probes' handler; DATA is the struct bt_block. */
int sp_bt_handler(struct selfprobe_ctx *ctx, void *data);
/* Print every active program's maps (once, at exit). */
void sp_bt_exit(void);

#endif
