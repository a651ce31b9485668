/* stopworld — make sure no other thread is stopped inside a window about
 * to be overwritten, moving those that are into the relocated copy.
 *
 * Before bytes 1–4 of a window become a jmp displacement, a thread whose PC
 * is inside (site, site+len) would resume in the middle of the new bytes.
 * The int3 at byte 0 already stops new entries; the threads already inside
 * are found this way:
 *   - a thread blocked in a system call: /proc/self/task/TID/syscall gives
 *     its user PC without disturbing it (no signal, so no EINTR);
 *   - any other thread gets a real-time signal queued with our token
 *     (SI_QUEUE; not SIGTRAP, which would coalesce with a trap); our
 *     handler reads its PC from the ucontext, moves it to the matching
 *     instruction of the relocated copy when it is inside a window, and
 *     acknowledges.
 * A thread that does not answer in time, a blocked one inside a window, or
 * one running a signal handler of the application that will resume inside
 * a window (sigframes.h; checked in both cases) fails the check: the caller
 * keeps those sites on int3.
 */
#ifndef SP_STOPWORLD_H
#define SP_STOPWORLD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "reloc.h"

struct sp_stop_window {
	uintptr_t site;
	uint8_t len;
	uintptr_t reloc;                  /* the relocated copy */
	const struct sp_reloc_map *map;
	int busy;                         /* out: SP_STOP_BUSY_* */
};

enum {
	SP_STOP_BUSY_BLOCKED = 1,         /* a thread blocked in a system call sits inside */
	SP_STOP_BUSY_FRAME,               /* a signal handler will resume a thread inside
					   * (sigframes.h) */
};

/* Sort N windows with CMP (qsort's contract; by site for the check), and
 * find the one at SITE in windows sorted by site (NULL: none).  Not libc's
 * qsort/bsearch: they run while the batch's int3s are in place, where each
 * libc call of ours would trap. */
void sp_stopworld_sort(struct sp_stop_window *windows, size_t n, int (*cmp)(const void *, const void *));
struct sp_stop_window *sp_stopworld_find(struct sp_stop_window *windows, size_t n, uintptr_t site);

/* Check (and fix) every other thread against WINDOWS, sorted by site.
 * 0, or -ETIMEDOUT when some thread did not answer (then nothing may be
 * assumed). */
int sp_stopworld_check(struct sp_stop_window *windows, size_t n);

/* The real-time signal the stop-check is queued with (SIGRTMAX - 3); the
 * trap handler (trap.h) owns it. */
int sp_stopworld_signal(void);

/* Queue the stop-check signal to thread TID with VALUE as its si_value
 * (SI_QUEUE, from this process): the tag in VALUE's top 16 bits says whose
 * question it is (this check's, or a quiescence's: quiesce.h).  0 or -1. */
int sp_stopworld_queue(pid_t tid, uint64_t value);

/* From the signal's handler, first: one of ours (queued by
 * sp_stopworld_queue, whatever its tag or generation) has arrived.  How
 * many are queued and not arrived yet (a thread that did not answer in
 * time, or that ended with one pending: never back to 0 then).  While any
 * is, the signal's action must stay ours (trap.h: sp_trap_uninstall). */
void sp_stopworld_arrived(const siginfo_t *si);
long sp_stopworld_in_flight(void);

/* From the stop-check signal's handler: is this our check signal?  If so, handle it
 * (move the PC in UC if needed) and return 1. */
int sp_stopworld_on_signal(const siginfo_t *si, void *uc);

#endif
