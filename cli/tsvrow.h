/* tsvrow — one probe's line of the control channel's "tsv" form
 * (runtime/api/control.h), as `selfprobe top` and the metrics read it:
 * hits missed returns lost lat_count lat_sum_ns buckets kind spec object
 * symbol label. */
#ifndef SP_CLI_TSVROW_H
#define SP_CLI_TSVROW_H

struct sp_tsv_row {
	unsigned long long hits, missed, returns, lost, lat_count, lat_sum;
	char *buckets;           /* a comma list, or "-": not a latency probe */
	char *kind, *spec, *object, *symbol, *label;
};

/* Split LINE (no newline) in place into R: 0, or -1 when it is not a
 * probe's line (not its 12 fields). */
int sp_tsv_row_parse(char *line, struct sp_tsv_row *r);

/* R's latency buckets into B (at most MAX): how many there are (0: not a
 * latency probe). */
int sp_tsv_row_buckets(const struct sp_tsv_row *r, unsigned long long *b, int max);

#endif
