/* shmprobe — a probe's record in the launcher's shared file (shm.h),
 * published for the launcher's report (shmprobe.c).  No-ops without it. */
#ifndef SP_SHMPROBE_H
#define SP_SHMPROBE_H

struct sp_probe;

/* Probe records (registry lock held). */
void sp_shm_publish(struct sp_probe *p);
void sp_shm_final(struct sp_probe *p);
/* A dormant probe attached again: its record counts live again, from its
 * frozen counts on (registry lock held). */
void sp_shm_republish(struct sp_probe *p);
/* P's handler faulted (called from the fault handler: stores only). */
void sp_shm_fault(struct sp_probe *p);

#endif
