/* tsvrow — see tsvrow.h. */
#include "tsvrow.h"

#include <stdlib.h>
#include <string.h>

int sp_tsv_row_parse(char *line, struct sp_tsv_row *r)
{
	char *f[12];
	int n = 0;
	for (char *s = line; n < 12; n++) {
		f[n] = s;
		char *t = strchr(s, '\t');
		if (!t) {
			n++;
			break;
		}
		*t = 0;
		s = t + 1;
	}
	if (n != 12)
		return -1;
	r->hits = strtoull(f[0], NULL, 10);
	r->missed = strtoull(f[1], NULL, 10);
	r->returns = strtoull(f[2], NULL, 10);
	r->lost = strtoull(f[3], NULL, 10);
	r->lat_count = strtoull(f[4], NULL, 10);
	r->lat_sum = strtoull(f[5], NULL, 10);
	r->buckets = f[6];
	r->kind = f[7];
	r->spec = f[8];
	r->object = f[9];
	r->symbol = f[10];
	r->label = f[11];
	return 0;
}

int sp_tsv_row_buckets(const struct sp_tsv_row *r, unsigned long long *b, int max)
{
	if (!strcmp(r->buckets, "-"))
		return 0;
	char *s = r->buckets;
	int n = 0;
	for (; n < max && *s; n++) {
		b[n] = strtoull(s, &s, 10);
		if (*s == ',')
			s++;
	}
	return n;
}
