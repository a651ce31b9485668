/* golang_goend — a goroutine's end drops its return records.
 *
 * Return probes on Go functions pair entries and returns by goroutine
 * (golang_ret.h).  A goroutine ended by runtime.Goexit (or one whose
 * frames a recovered panic unwound) leaves records whose returns never
 * come: every goroutine's end, runtime.Goexit's and a return from its
 * top function alike, runs runtime.goexit1 with a normal call on the
 * goroutine's own stack, r14 its g (goexit0 after it runs on g0, by
 * mcall).  An internal probe there counts that goroutine's records lost
 * at once.  Placed in each Go object holding a Go return probe, only
 * while one is attached: a Go program without one pays nothing.  A Go
 * object without the runtime.goexit1 symbol keeps its records until a
 * frame of a goroutine reusing the g meets them; the report's errors say
 * so.  Registers itself with the registry (registry.h's return-probe
 * hook) as the library is loaded. */
#ifndef SP_GOLANG_GOEND_H
#define SP_GOLANG_GOEND_H

/* Each time a return probe is attached (registry lock held): the hook in
 * every Go object that has a Go return probe and none yet. */
void sp_go_goend_arm(void);

#endif
