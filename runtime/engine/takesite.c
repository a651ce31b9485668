/* takesite — a function entry taken for libc's signal entry points (sigtake.h); see registry.h. */
#include "registry.h"
#include "heap.h"
#include "arm.h"
#include "site.h"
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sp_site *sp_probe_take_site(uintptr_t addr, uintptr_t entry, bool int3_ok, char *err, size_t errlen)
{
	struct sp_object *objs;
	size_t n;
	struct sp_site *site = NULL;
	int rc = sp_maps_snapshot(&objs, &n);
	if (rc) {
		snprintf(err, errlen, "cannot read the mappings: %s", strerror(-rc));
		return NULL;
	}
	snprintf(err, errlen, "%#lx is in no loaded object's text", (unsigned long)addr);
	for (size_t i = 0; i < n; i++) {
		if (!sp_maps_in_text(&objs[i], addr, SP_JMP_LEN))
			continue;
		struct sp_elf *elf = sp_targets_elf(objs[i].path, err, errlen);
		const struct sp_sym *sym = elf ? sp_elf_containing(elf, addr - objs[i].bias) : NULL;
		if (elf && (!sym || sym->value != addr - objs[i].bias || sym->is_ifunc)) {
			snprintf(err, errlen, "%#lx is not a function's entry in %s", (unsigned long)addr,
				 sp_maps_base_name(objs[i].path));
			break;
		}
		struct target t = { 0 };
		if (!elf || sp_target_fill(&objs[i], elf, sym, 0, &t, err, errlen) != 0)
			break;
		sp_free(t.implementation);
		sp_free(t.symbol);
		struct sp_site *s = sp_site_lookup(addr);
		if (s && !s->taken && (s->armed || atomic_load(&s->vec))) {
			snprintf(err, errlen, "%s is probed already", sym->name);
			break;
		}
		/* the one decision, as for a probe: a jmp where it is safe (no
		 * branch into bytes 1-4, …); its relocated window is where a
		 * thread caught inside the window at arming goes on */
		const char *why = NULL;
		s = s ? s : sp_arm_site(&objs[i], addr, &t.fn, true, &why);
		if (!s || (!s->tramp_ok && !int3_ok)) {
			snprintf(err, errlen, "%s: %s", sym->name,
				 why ? why : s && s->jmp_reason ? s->jmp_reason : "no jmp path");
			break;
		}
		/* no jmp: its int3 leads there instead (arm.c), a trap a call */
		s->want_jmp = s->tramp_ok;
		s->taken = true;
		s->guard_entry = false;   /* coexist's offset bytes are a trampoline's */
		s->tramp.entry = entry;
		site = s;
		break;
	}
	sp_maps_free(objs, n);
	return site;
}
