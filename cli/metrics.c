/* metrics — OpenMetrics for Prometheus (metrics.h).
 *
 * Families: selfprobe_hits_total, selfprobe_missed_total,
 * selfprobe_returns_lost_total (counters) with labels probe (the spec
 * item), object, symbol, pid, comm; latency probes add
 * selfprobe_latency_seconds, a histogram whose buckets are the runtime's
 * log2 ones (bucket k holds [2^(k-1), 2^k) ns, so le = 2^k ns, cumulative).
 */
#include "metrics.h"
#include "latency.h"
#include "optval.h"
#include "tsvrow.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct MHD_Daemon *daemon_;
static sp_metrics_fetch fetch_;
static void *fetch_ctx;

/* A label value: backslash, quote and newline escaped. */
static void label(FILE *f, const char *name, const char *v, const char *sep)
{
	fprintf(f, "%s%s=\"", sep, name);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*v, f);
	}
	fputc('"', f);
}

struct row {
	struct sp_tsv_row t;
	const char *pid, *comm;       /* of its process */
};

static void labels(FILE *f, const struct row *r)
{
	label(f, "probe", r->t.spec, "");
	label(f, "object", r->t.object, ",");
	label(f, "symbol", r->t.symbol, ",");
	label(f, "pid", r->pid, ",");
	label(f, "comm", r->comm, ",");
}

void sp_metrics_write(FILE *f, const char *tsv)
{
	static const char *const fam[3][2] = {
		{ "selfprobe_hits", "Executions of the probed site (returns for return probes)" },
		{ "selfprobe_missed", "Hits whose handlers did not run (recursion)" },
		{ "selfprobe_returns_lost", "Returns never seen (longjmp, exceptions, thread exit)" },
	};
	char *copy = strdup(tsv ? tsv : "");
	if (!copy)
		return;
	/* the lines, parsed once: a process's line (3 fields: pid, seconds,
	 * comm) gives the pid and comm of the probe lines after it */
	size_t cap = 16, nr = 0;
	struct row *rows = malloc(cap * sizeof(*rows));
	const char *pid = "", *comm = "";
	for (char *line = copy; rows && *line;) {
		char *e = strchr(line, '\n');
		if (e)
			*e = 0;
		char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (t2 && !strchr(t2 + 1, '\t')) {
			*t1 = *t2 = 0;
			pid = line;
			comm = t2 + 1;
		} else {
			if (nr == cap) {
				struct row *nrw = realloc(rows, (cap *= 2) * sizeof(*rows));
				if (!nrw)
					break;
				rows = nrw;
			}
			if (sp_tsv_row_parse(line, &rows[nr].t) == 0) {
				rows[nr].pid = pid;
				rows[nr].comm = comm;
				nr++;
			}
		}
		if (!e)
			break;
		line = e + 1;
	}
	for (int k = 0; k < 3 && rows; k++) {
		fprintf(f, "# TYPE %s counter\n# HELP %s %s.\n", fam[k][0], fam[k][0], fam[k][1]);
		for (size_t i = 0; i < nr; i++) {
			const struct sp_tsv_row *t = &rows[i].t;
			unsigned long long v = k == 0 ? t->hits : k == 1 ? t->missed : t->lost;
			fprintf(f, "%s_total{", fam[k][0]);
			labels(f, &rows[i]);
			fprintf(f, "} %llu\n", v);
		}
	}
	bool any_lat = false;
	for (size_t i = 0; rows && i < nr; i++) {
		const struct sp_tsv_row *t = &rows[i].t;
		if (!strcmp(t->buckets, "-"))
			continue;
		if (!any_lat)
			fputs("# TYPE selfprobe_latency_seconds histogram\n"
			      "# HELP selfprobe_latency_seconds Time from entry to return of latency probes.\n", f);
		any_lat = true;
		unsigned long long cum = 0, bucket[SP_LAT_BUCKETS];
		int nb = sp_tsv_row_buckets(t, bucket, SP_LAT_BUCKETS);
		for (int b = 0; b < nb; b++) {
			cum += bucket[b];
			/* bucket b's upper bound: 2^b ns (bucket 0: exactly 0) */
			double le = b == 0 ? 0.0 : (double)(1ull << (b < 63 ? b : 63)) / 1e9;
			fputs("selfprobe_latency_seconds_bucket{", f);
			labels(f, &rows[i]);
			fprintf(f, ",le=\"%.9g\"} %llu\n", le, cum);
		}
		fputs("selfprobe_latency_seconds_bucket{", f);
		labels(f, &rows[i]);
		fprintf(f, ",le=\"+Inf\"} %llu\n", t->lat_count);
		fputs("selfprobe_latency_seconds_sum{", f);
		labels(f, &rows[i]);
		fprintf(f, "} %.9f\n", (double)t->lat_sum / 1e9);
		fputs("selfprobe_latency_seconds_count{", f);
		labels(f, &rows[i]);
		fprintf(f, "} %llu\n", t->lat_count);
	}
	fputs("# EOF\n", f);
	free(rows);
	free(copy);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_len, void **state)
{
	(void)cls; (void)version; (void)upload; (void)upload_len; (void)state;
	const char *text = "not found\n";
	unsigned status = MHD_HTTP_NOT_FOUND;
	char *buf = NULL;
	size_t len = 0;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		text = "GET only\n";
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (!strcmp(url, "/metrics")) {
		char *tsv = fetch_(fetch_ctx);
		if (!tsv) {
			text = "the process's counts cannot be read (detached, or it ended)\n";
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		} else {
			FILE *f = open_memstream(&buf, &len);
			if (f) {
				sp_metrics_write(f, tsv);
				fclose(f);
				text = buf;
				status = MHD_HTTP_OK;
			}
			free(tsv);
		}
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								 MHD_RESPMEM_MUST_COPY);
	free(buf);
	if (!r)
		return MHD_NO;
	if (status == MHD_HTTP_OK)
		MHD_add_response_header(r, "Content-Type",
					"application/openmetrics-text; version=1.0.0; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* ADDR as a socket address: 0, or -1 with the reason in WHY. */
static int address(const char *addr, struct sockaddr_in *sa, char *why, size_t n)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	long port = 0;
	if (!colon || (size_t)(colon - addr) >= sizeof(host) || sp_opt_parse_long(colon + 1, 1, 65535, &port) != 0) {
		snprintf(why, n, "--metrics %s: expected HOST:PORT, PORT from 1 to 65535 (127.0.0.1:9464)", addr);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	*sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
		snprintf(why, n, "--metrics %s: the host must be a numeric IPv4 address (127.0.0.1)", addr);
		return -1;
	}
	return 0;
}

int sp_metrics_check(const char *addr, char *why, size_t n)
{
	struct sockaddr_in sa;
	return address(addr, &sa, why, n);
}

int sp_metrics_start(const char *addr, sp_metrics_fetch fetch, void *ctx, char *why, size_t n)
{
	struct sockaddr_in sa;
	if (address(addr, &sa, why, n) != 0)
		return -1;
	fetch_ = fetch;
	fetch_ctx = ctx;
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, ntohs(sa.sin_port), NULL, NULL,
				   answer, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				   MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				   MHD_OPTION_END);
	if (!daemon_) {
		snprintf(why, n, "--metrics %s: cannot listen there (in use?)", addr);
		return -1;
	}
	return 0;
}

void sp_metrics_stop(void)
{
	if (daemon_)
		MHD_stop_daemon(daemon_);
	daemon_ = NULL;
}
