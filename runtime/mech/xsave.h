/* xsave — handler calls that preserve the vector/FPU state (xsave.S). */
#ifndef SP_XSAVE_H
#define SP_XSAVE_H

#include <stdint.h>

extern uint64_t sp_xsave_size;   /* bytes to reserve (area + 64 alignment) */
extern uint32_t sp_xsave_kind;   /* 0 fxsave, 1 xsave, 2 xsavec */
extern uint64_t sp_xsave_mask;   /* the components saved (XCR0 without AMX) */

/* Probe the CPU once (CPUID leaf 0xD). */
void sp_xsave_init(void);

/* FN(CTX, DATA, AREA): AREA is the saved state (its first 512 bytes in
 * FXSAVE's legacy layout: XMM0-15 at byte 160). */
int sp_call_preserving_vectors(int (*fn)(void *, void *, const void *), void *ctx, void *data);

#endif
