/* shmprobe — a probe's record in the launcher's shared file (shm.h): what
 * the launcher reports of it when the process cannot.  Apart from shm.c,
 * which knows the file and not the probe record (probe.h), so that the
 * per-thread counters and latency, which the probe record holds, can keep
 * their memory in the file without a cycle. */
#include "shmprobe.h"
#include "probe.h"
#include "shm.h"

#include <stdatomic.h>

/* What a report entry says of P's site and state, as report.c writes it:
 * set at every (re)attach. */
static void describe(struct sp_shm_record *r, const struct sp_probe *p)
{
	r->jmp = p->site->jmp;
	r->patch = !p->site->jmp ? SP_SHM_PATCH_INT3 : p->site->hop ? SP_SHM_PATCH_HOP : SP_SHM_PATCH_JMP5;
	r->address = p->site->addr;
	r->unloaded = 0;
	sp_shm_copy(r->reason, sizeof(r->reason), sp_site_reason(p->site));
	r->has_symbol = p->symbol != NULL;
	sp_shm_copy(r->symbol, sizeof(r->symbol), p->symbol);
	sp_shm_copy(r->implementation, sizeof(r->implementation), p->implementation);
}

void sp_shm_publish(struct sp_probe *p)
{
	uint32_t i;
	struct sp_shm_record *r = p->internal ? NULL : sp_shm_record_next(&i, p->spec);
	if (!r)
		return;
	r->id = p->id;
	r->kind = (uint8_t)p->kind;
	r->link = (uint64_t)(uintptr_t)p->link;
	r->action = (uint8_t)p->action;
	r->handler = p->fn && p->action == SP_ACT_COUNT;
	r->wants_return = p->wants_return;
	r->detached = 0;
	r->lat_slot = p->lat_slot;
	r->fault_sig = p->fault_sig;
	r->fault_addr = p->fault_addr;
	atomic_store(&r->faulted, atomic_load(&p->faulted));
	sp_shm_copy(r->spec, sizeof(r->spec), p->spec);
	sp_shm_copy(r->label, sizeof(r->label), p->label);
	sp_shm_copy(r->object, sizeof(r->object), p->object);
	describe(r, p);
	p->shm_record = (int)i;
	sp_shm_record_commit(i);
}

void sp_shm_republish(struct sp_probe *p)
{
	if (!sp_shm_has_section())
		return;
	struct sp_shm_record *r = sp_shm_record(p->shm_record);
	if (!r) {
		sp_shm_publish(p);
		return;
	}
	r->id = p->id;
	r->lat_slot = p->lat_slot;
	describe(r, p);
	for (int k = 0; k < 4; k++)
		r->final[k] = p->final[k];
	r->final_lat = sp_probe_final_lat(p);
	__atomic_store_n(&r->detached, 0, __ATOMIC_RELEASE);   /* live again: last */
}

void sp_shm_final(struct sp_probe *p)
{
	struct sp_shm_record *r = sp_shm_record(p->shm_record);
	if (!r)
		return;
	for (int k = 0; k < 4; k++)
		r->final[k] = p->final[k];
	r->final_lat = sp_probe_final_lat(p);
	r->unloaded = p->unloaded;
	__atomic_store_n(&r->detached, 1, __ATOMIC_RELEASE);
}

void sp_shm_fault(struct sp_probe *p)
{
	struct sp_shm_record *r = sp_shm_record(p->shm_record);
	if (!r)
		return;
	r->fault_sig = p->fault_sig;
	r->fault_addr = p->fault_addr;
	atomic_store(&r->faulted, 1);   /* after the details */
}
