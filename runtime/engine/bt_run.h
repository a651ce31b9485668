/* bt_run — a compiled bpftrace program in the runtime (see bt.h).
 *
 * A block's probe calls sp_bt_handler.  The first attach of a program
 * makes it active: its output goes to a copy of the process's stdout taken
 * then (bpftrace prints to its stdout; the copy survives a program that
 * closes its own), and at exit (sp_bt_exit, from the exit report) its maps
 * are printed there in bpftrace's format (UPROBE_BT_FORMAT=json: its JSON
 * lines).  BEGIN runs at activation (or at the program's entry point when
 * that came before libc was initialised), each interval block in a thread
 * of ours, END at exit before the maps.  A map that refused updates for
 * want of room says so in the report's errors.
 */
#ifndef SP_BT_RUN_H
#define SP_BT_RUN_H

#include "spec.h"

#include <stdbool.h>

struct selfprobe_ctx;

/* Attach ITEM (action SP_ACT_PROGRAM): as sp_probe_attach_item. */
long sp_bt_attach_item(const struct sp_spec_item *item);
/* The probes' handler; DATA is the struct bt_block. */
int sp_bt_handler(struct selfprobe_ctx *ctx, void *data);
/* Run END blocks and print every active program's maps (once, at exit). */
void sp_bt_exit(void);
/* Give the language what it needs of the runtime (args.NAME's DWARF
 * reader, the stack symboliser): before a program is compiled. */
void sp_bt_register(void);
/* Programs activated from now on print bpftrace's JSON lines (-f json). */
void sp_bt_set_json(bool json);

#endif
