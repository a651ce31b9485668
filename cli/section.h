/* section — one process's section of the launcher's shared file
 * (runtime/hot/shm.h), read by the launcher: its counts, latency histograms,
 * errors, stacks and timeline, as the report of a process that could not
 * write its own (killed, crashed), or to merge every process's timeline
 * and folded stacks into one file. */
#ifndef SP_SECTION_H
#define SP_SECTION_H

#include <stdbool.h>
#include <stdio.h>

#include "shm.h"
#include "stack.h"
#include "timeline.h"

struct sp_section {
	int fd;
	const struct sp_shm_section *s;
	const struct sp_shm_record *records;
	uint32_t n_records;
	const char *stripes;                   /* stripe 0's counters: each stripe's
						* counters and histograms at
						* stripe_bytes apart (stripes.h),
						* N_LOW of them (NULL: none) */
	uint32_t n_low;
	const char *shared;                    /* the shared stripe's, or NULL */
	const struct sp_shm_error *errors;
	uint32_t n_errors;
	struct sp_stack_view stacks;           /* table NULL when unreadable */
};

/* Map S of the file FD.  0 or -errno. */
int sp_section_open(int fd, const struct sp_shm_section *s, struct sp_section *v);
void sp_section_close(struct sp_section *v);

/* Record R's counts (enum sp_counter): earlier attachments' (final), and
 * the live ones while attached. */
void sp_section_counts(const struct sp_section *v, const struct sp_shm_record *r, uint64_t *c);
/* A latency probe's histogram into *OUT: earlier attachments' (unless
 * LIVE_ONLY) and the live one while attached.  False: not a latency probe. */
struct sp_lat;
bool sp_section_latency(const struct sp_section *v, const struct sp_shm_record *r, bool live_only,
			struct sp_lat *out);

/* The report: JSON fields "probes" and "errors" (no braces), or text. */
void sp_section_report(FILE *f, const struct sp_section *v, bool json);
/* Its probes in the control channel's "tsv" form (runtime/api/control.h), rows
 * only. */
void sp_section_tsv(FILE *f, const struct sp_section *v);
/* Its threads' timeline events, into W. */
void sp_section_timeline(const struct sp_section *v, struct sp_tl_writer *w);
/* Its stacks as folded lines. */
void sp_section_folded(FILE *f, const struct sp_section *v);

#endif
