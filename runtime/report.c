/* report — see report.h.  The JSON fields are the design's contract:
 * version, pid, probes[{spec, kind, object, symbol, address, mode, reason,
 * action, hits, missed}], errors[{spec, message}]; fields may be added
 * (implementation: the IFUNC implementation chosen), never renamed. */
#include "report.h"
#include "probe.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *mode_name(const struct sp_probe *p)
{
	return p->site->jmp ? "jmp" : "int3";
}

void sp_report_text(FILE *f)
{
	for (struct sp_probe *p = sp_probe_first(); p; p = p->next) {
		uint64_t hits, missed;
		sp_probe_counts(p, &hits, &missed);
		fprintf(f, "@count[%s]: %" PRIu64 "\n", p->label, hits);
		if (missed)
			fprintf(f, "@missed[%s]: %" PRIu64 "\n", p->label, missed);
	}
	fflush(f);
}

static void json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		switch (*c) {
		case '"':  fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*c < 0x20)
				fprintf(f, "\\u%04x", *c);
			else
				fputc(*c, f);
		}
	}
	fputc('"', f);
}

void sp_report_json(FILE *f)
{
	fprintf(f, "{\"version\": 1, \"pid\": %d,\n \"probes\": [", (int)getpid());
	const char *sep = "";
	for (struct sp_probe *p = sp_probe_first(); p; p = p->next) {
		uint64_t hits, missed;
		sp_probe_counts(p, &hits, &missed);
		fprintf(f, "%s\n  {\"spec\": ", sep);
		json_str(f, p->spec);
		fprintf(f, ", \"kind\": \"%s\", \"object\": ", sp_kind_name(p->kind));
		json_str(f, p->object);
		fputs(", \"symbol\": ", f);
		json_str(f, p->symbol);
		fprintf(f, ", \"address\": \"%#" PRIxPTR "\", \"mode\": \"%s\", \"reason\": ",
			p->site->addr, mode_name(p));
		json_str(f, p->site->jmp ? NULL : p->site->reason);
		fprintf(f, ", \"action\": \"%s\", \"hits\": %" PRIu64 ", \"missed\": %" PRIu64,
			p->fn && p->action == SP_ACT_COUNT ? "handler" : sp_action_name(p->action),
			hits, missed);
		if (p->implementation) {
			fputs(", \"implementation\": ", f);
			json_str(f, p->implementation);
		}
		fprintf(f, ", \"attached\": %s}", p->attached ? "true" : "false");
		sep = ",";
	}
	fputs("],\n \"errors\": [", f);
	sep = "";
	for (struct sp_error *e = sp_error_first(); e; e = e->next) {
		fprintf(f, "%s\n  {\"spec\": ", sep);
		json_str(f, e->spec);
		fputs(", \"message\": ", f);
		json_str(f, e->message);
		fputc('}', f);
		sep = ",";
	}
	fputs("]}\n", f);
	fflush(f);
}

char *sp_report_path(const char *pattern)
{
	size_t cap = strlen(pattern) + 32, n = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	for (const char *c = pattern; *c; c++) {
		if (n + 24 >= cap) {
			char *o = realloc(out, cap *= 2);
			if (!o) {
				free(out);
				return NULL;
			}
			out = o;
		}
		if (c[0] == '%' && c[1] == 'p') {
			n += (size_t)snprintf(out + n, cap - n, "%d", (int)getpid());
			c++;
		} else if (c[0] == '%' && c[1] == '%') {
			out[n++] = '%';
			c++;
		} else
			out[n++] = *c;
	}
	out[n] = 0;
	return out;
}
