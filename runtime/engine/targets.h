/* targets — the sites a spec item names in one loaded object (targets.c):
 * its function symbols (an IFUNC resolved to the implementation the
 * process calls), a +offset checked to be an instruction boundary, USDT
 * notes, an address; each with the extent of the function holding it.
 * Nothing is patched or registered here. */
#ifndef SP_TARGETS_H
#define SP_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decide.h"
#include "elfsym.h"
#include "maps.h"
#include "spec.h"
#include "usdt.h"

struct target {
	uintptr_t addr;
	char *symbol;            /* what the report calls it */
	char *implementation;    /* IFUNC: the implementation chosen */
	struct sp_func_extent fn; /* the function holding the site */
	const struct sp_usdt_note *note;  /* usdt: the note of the site */
};

/* The ELF file at PATH, read once per process.  NULL with ERR. */
struct sp_elf *sp_targets_elf(const char *path, char *err, size_t errlen);

/* Every site ITEM names in OBJ (ELF ELF), into *OUT (malloc'ed; each
 * target's strings too).  Count, or -errno with ERR. */
long sp_targets_resolve(const struct sp_spec_item *item, const struct sp_object *obj,
			struct sp_elf *elf, struct target **out, char *err, size_t errlen);

/* Fill T for SYM (+OFFSET).  0, or -errno with a message in ERR. */
int sp_target_fill(const struct sp_object *obj, const struct sp_elf *elf,
		   const struct sp_sym *sym, uint64_t offset, struct target *t,
		   char *err, size_t errlen);

/* uretprobe, usession and the latency action swap the return address. */
bool sp_item_wants_return(const struct sp_spec_item *item);

#endif
