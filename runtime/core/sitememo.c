/* sitememo — see sitememo.h. */
#include "sitememo.h"
#include "heap.h"
#include "sort.h"
#include "jmpplan.h"

#include <stdlib.h>
#include <string.h>

#define KIND "site"
#define MAGIC "SPSITE01"
#define NONE UINT64_MAX          /* an unknown function start or limit */

/* The stored form: a header, records sorted by key, then the reasons'
 * strings (each NUL-terminated; the last byte of the table is a NUL). */
struct head {
	char magic[8];
	uint64_t n, str_len;
};

struct rec {
	uint64_t site, func, size, limit, avail;     /* ELF-relative; NONE */
	uint8_t landing_pads, path, block, targets;
	uint8_t first_len, n_insns, wlen, flow_ends;
	uint8_t n_bytes, pad[3];
	uint32_t reason;         /* 1 + offset in the strings; 0: none */
	uint8_t bytes[SP_SITEMEMO_BYTES];
};

struct sp_sitememo {
	struct sp_objcache_key key;
	uintptr_t bias;
	bool read;               /* the stored table was looked for */
	const struct rec *v;     /* the stored table (mapped), sorted */
	size_t n;
	const char *str;         /* its strings */
	size_t str_len;
	void *map;               /* its mapping (objcache.h), or NULL */
	size_t map_len;
	char *own;               /* the table merged and written here, or NULL */
	struct rec *fresh;       /* decided here, not yet stored */
	size_t n_fresh, cap_fresh;
	char *fstr;              /* their strings */
	size_t fstr_len, fstr_cap;
	struct sp_sitememo_stats st;
};

static int cmp(const struct rec *a, const struct rec *b)
{
#define BY(f) if (a->f != b->f) return a->f < b->f ? -1 : 1
	BY(site);
	BY(func);
	BY(size);
	BY(limit);
	BY(avail);
	BY(landing_pads);
#undef BY
	return 0;
}

static int qcmp(const void *a, const void *b) { return cmp(a, b); }

struct sp_sitememo *sp_sitememo_new(const struct sp_objcache_key *objkey, uintptr_t bias)
{
	struct sp_sitememo *m = sp_calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	sp_objcache_derive(KIND, objkey, &m->key);
	m->bias = bias;
	return m;
}

void sp_sitememo_free(struct sp_sitememo *m)
{
	if (!m)
		return;
	sp_objcache_release(m->map, m->map_len);
	sp_free(m->own);
	sp_free(m->fresh);
	sp_free(m->fstr);
	sp_free(m);
}

/* One record as this module would have written it. */
static const char *check_rec(const struct rec *r, size_t str_len)
{
	if (r->landing_pads > 1 || r->flow_ends > 1 || r->pad[0] || r->pad[1] || r->pad[2])
		return "a flag out of range";
	if (r->func != NONE && (r->site < r->func || (r->size && r->site - r->func >= r->size)))
		return "a site outside its function";
	if (r->n_bytes < SP_JMP_LEN || r->n_bytes > SP_SITEMEMO_BYTES || r->n_bytes > r->avail ||
	    r->first_len == 0 || r->first_len > SP_INSN_MAX_LEN || r->first_len > r->n_bytes ||
	    r->block > SP_SITEMEMO_BLOCK_MAX)
		return "a length out of range";
	if (r->reason > str_len)
		return "a reason outside the strings";
	if (r->path == SP_SITEMEMO_JMP5) {
		if (r->n_insns == 0 || r->n_insns > SP_WINDOW_MAX || r->wlen < r->first_len || r->wlen > r->n_bytes ||
		    (r->wlen < SP_JMP_LEN && !r->flow_ends) || r->reason || r->block != SP_SITEMEMO_BLOCK_NONE)
			return "a jmp window out of range";
	} else if (r->path == SP_SITEMEMO_INT3) {
		if (r->n_insns || r->wlen || r->flow_ends || !r->reason || r->block == SP_SITEMEMO_BLOCK_NONE)
			return "an int3 decision out of range";
	} else {
		return "a path out of range";
	}
	return NULL;
}

const char *sp_sitememo_validate(const void *data, size_t len)
{
	struct head h;
	if (len < sizeof(h))
		return "truncated (no header)";
	memcpy(&h, data, sizeof(h));
	if (memcmp(h.magic, MAGIC, 8) != 0)
		return "another format (magic)";
	size_t rest = len - sizeof(h);
	if (h.n > rest / sizeof(struct rec) || h.str_len != rest - h.n * sizeof(struct rec))
		return "lengths do not add up (truncated or padded)";
	const char *str = (const char *)data + sizeof(h) + h.n * sizeof(struct rec);
	if (h.str_len && str[h.str_len - 1] != '\0')
		return "unterminated strings";
	const struct rec *v = (const struct rec *)((const char *)data + sizeof(h));  /* 8-byte aligned */
	for (size_t i = 0; i < h.n; i++) {
		const char *why = check_rec(&v[i], h.str_len);
		if (why)
			return why;
		/* a reason starts a string: at offset 0 or after a NUL */
		if (v[i].reason > 1 && str[v[i].reason - 2] != '\0')
			return "a reason inside another";
		if (i && cmp(&v[i - 1], &v[i]) >= 0)
			return "records out of order";
	}
	return NULL;
}

static void read_table(struct sp_sitememo *m)
{
	m->read = true;
	size_t len;
	void *data = sp_objcache_load_checked(KIND, &m->key, &len, sp_sitememo_validate);
	if (!data)
		return;
	struct head h;
	memcpy(&h, data, sizeof(h));
	m->map = data;
	m->map_len = len;
	m->v = (const struct rec *)((const char *)data + sizeof(h));
	m->n = m->st.loaded = h.n;
	m->str = (const char *)(m->v + h.n);
	m->str_len = h.str_len;
}

bool sp_sitememo_active(struct sp_sitememo *m)
{
	if (m && !m->read)
		read_table(m);
	return m && m->n;
}

static uint64_t rel(const struct sp_sitememo *m, uintptr_t a)
{
	return a ? (uint64_t)(a - m->bias) : NONE;
}

static struct rec key_rec(const struct sp_sitememo *m, const struct sp_sitememo_key *k)
{
	return (struct rec){ .site = k->site - m->bias, .func = rel(m, k->func), .size = k->size,
			     .limit = rel(m, k->limit), .avail = k->avail, .landing_pads = k->landing_pads };
}

bool sp_sitememo_get(struct sp_sitememo *m, const struct sp_sitememo_key *k, struct sp_sitememo_rec *r)
{
	if (!sp_sitememo_active(m))
		return false;
	struct rec key = key_rec(m, k);
	/* active: m->n > 0, and the table strictly sorted (validated) */
	const struct rec *s = bsearch(&key, m->v, m->n, sizeof(*m->v), qcmp);
	if (!s)
		return false;
	*r = (struct sp_sitememo_rec){
		.path = s->path, .block = s->block, .window_targets = s->targets,
		.first_len = s->first_len, .n_insns = s->n_insns, .wlen = s->wlen,
		.flow_ends = s->flow_ends, .n_bytes = s->n_bytes,
		.reason = s->reason ? m->str + s->reason - 1 : NULL,
	};
	memcpy(r->bytes, s->bytes, sizeof(r->bytes));
	m->st.hits++;
	return true;
}

void sp_sitememo_stale(struct sp_sitememo *m)
{
	if (m)
		m->st.stale++;
}

void sp_sitememo_put(struct sp_sitememo *m, const struct sp_sitememo_key *k, const struct sp_sitememo_rec *r)
{
	if (!m || !sp_objcache_enabled())
		return;
	struct rec s = key_rec(m, k);
	s.path = r->path;
	s.block = r->block;
	s.targets = r->window_targets;
	s.first_len = r->first_len;
	s.n_insns = r->n_insns;
	s.wlen = r->wlen;
	s.flow_ends = r->flow_ends;
	s.n_bytes = r->n_bytes;
	memcpy(s.bytes, r->bytes, sizeof(s.bytes));
	size_t rlen = r->reason ? strlen(r->reason) + 1 : 0;
	s.reason = rlen ? 1 : 0;  /* for the check; the real offset below */
	if (k->site < m->bias || check_rec(&s, rlen) || rlen > 4096)
		return;   /* what a record cannot hold is simply not remembered */
	if (m->n_fresh == m->cap_fresh) {
		size_t cap = m->cap_fresh ? m->cap_fresh * 2 : 256;
		struct rec *f = sp_realloc(m->fresh, cap * sizeof(*f));
		if (!f)
			return;
		m->fresh = f;
		m->cap_fresh = cap;
	}
	if (m->fstr_len + rlen > m->fstr_cap) {
		size_t cap = m->fstr_cap ? m->fstr_cap * 2 : 4096;
		while (cap < m->fstr_len + rlen)
			cap *= 2;
		char *f = sp_realloc(m->fstr, cap);
		if (!f)
			return;
		m->fstr = f;
		m->fstr_cap = cap;
	}
	if (rlen) {
		memcpy(m->fstr + m->fstr_len, r->reason, rlen);
		s.reason = (uint32_t)(m->fstr_len + 1);
		m->fstr_len += rlen;
	}
	m->fresh[m->n_fresh++] = s;
	m->st.added++;
}

/* Append string S (NULL: none) to the table being built: its reason field. */
static uint32_t add_str(char *buf, size_t *len, const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s) + 1;
	memcpy(buf + *len, s, n);
	*len += n;
	return (uint32_t)(*len - n + 1);
}

void sp_sitememo_flush(struct sp_sitememo *m)
{
	if (!m || !m->n_fresh || !sp_objcache_enabled())
		return;
	if (!m->read)
		read_table(m);
	/* fresh records first in sort order, then the stored ones not
	 * replaced: a record found stale is superseded by its fresh one */
	size_t nf = m->n_fresh;
	sp_qsort(m->fresh, nf, sizeof(*m->fresh), qcmp);
	size_t cap = (m->n + nf) * sizeof(struct rec) + sizeof(struct head) + m->str_len + m->fstr_len;
	char *buf = sp_malloc(cap);
	if (!buf)
		return;
	struct rec *out = (struct rec *)(buf + sizeof(struct head));
	size_t k = 0, i = 0, j = 0;
	/* strings after the records: build them separately, then move */
	char *strs = sp_malloc(m->str_len + m->fstr_len + 1);
	size_t slen = 0;
	if (!strs) {
		sp_free(buf);
		return;
	}
	while (i < m->n || j < nf) {
		const struct rec *r;
		const char *reason;
		int c = i == m->n ? 1 : j == nf ? -1 : cmp(&m->v[i], &m->fresh[j]);
		if (c < 0) {
			r = &m->v[i++];
			reason = r->reason ? m->str + r->reason - 1 : NULL;
		} else {
			if (c == 0)
				i++;   /* replaced */
			r = &m->fresh[j++];
			while (j < nf && cmp(&m->fresh[j], r) == 0)
				r = &m->fresh[j++];   /* one record per key */
			reason = r->reason ? m->fstr + r->reason - 1 : NULL;
		}
		out[k] = *r;
		out[k].reason = add_str(strs, &slen, reason);
		k++;
	}
	struct head h = { .n = k, .str_len = slen };
	memcpy(h.magic, MAGIC, 8);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h) + k * sizeof(struct rec), strs, slen);
	sp_free(strs);
	size_t len = sizeof(h) + k * sizeof(struct rec) + slen;
	if (sp_sitememo_validate(buf, len)) {
		sp_free(buf);   /* never written: a bug here must not poison the cache */
		return;
	}
	sp_objcache_store(KIND, &m->key, buf, len);
	/* the merged table is this process's from now on (a later attach
	 * adds to it, not to the one read at start) */
	sp_free(m->own);
	m->own = buf;
	m->v = out;
	m->n = k;
	m->str = buf + sizeof(h) + k * sizeof(struct rec);
	m->str_len = slen;
	m->n_fresh = 0;
	m->fstr_len = 0;
}

void sp_sitememo_stats(const struct sp_sitememo *m, struct sp_sitememo_stats *st)
{
	if (m)
		*st = m->st;
	else
		memset(st, 0, sizeof(*st));
}
