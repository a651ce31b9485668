/* ehframe — see ehframe.h.  The format: the LSB's "Exception Frame" (.eh_frame)
 * chapter: a sequence of entries, each a 4-byte length (0xffffffff: an
 * 8-byte one follows; 0: the terminator), then a 4-byte id: 0 for a CIE,
 * else the distance back from the id field to the entry's CIE (an FDE). */
#include "ehframe.h"

#include <stdbool.h>
#include <string.h>

/* DW_EH_PE_*: low nibble the value's format, bits 4-6 how it applies. */
#define PE_OMIT 0xff
#define PE_ABSPTR 0x00
#define PE_ULEB128 0x01
#define PE_UDATA2 0x02
#define PE_UDATA4 0x03
#define PE_UDATA8 0x04
#define PE_SLEB128 0x09
#define PE_SDATA2 0x0a
#define PE_SDATA4 0x0b
#define PE_SDATA8 0x0c
#define PE_PCREL 0x10
#define PE_INDIRECT 0x80

/* A bounded reader over [p, end). */
struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t fixed(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return 0;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	return v;
}

static uint64_t uleb(struct rd *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; !r->bad; shift += 7) {
		if (r->p >= r->end || shift >= 64) {
			r->bad = true;
			break;
		}
		uint8_t b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	return v;
}

static int64_t sleb(struct rd *r)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;
	do {
		if (r->bad || r->p >= r->end || shift >= 64) {
			r->bad = true;
			return 0;
		}
		b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	if (shift < 64 && (b & 0x40))
		v |= ~(uint64_t)0 << shift;
	return (int64_t)v;
}

static uint64_t sext(uint64_t v, unsigned bits)
{
	uint64_t m = (uint64_t)1 << (bits - 1);
	return (v ^ m) - m;
}

/* A value in ENC's format (the low nibble), not applied. */
static uint64_t value(struct rd *r, uint8_t enc)
{
	switch (enc & 0x0f) {
	case PE_ABSPTR: return fixed(r, 8);
	case PE_ULEB128: return uleb(r);
	case PE_UDATA2: return fixed(r, 2);
	case PE_UDATA4: return fixed(r, 4);
	case PE_UDATA8: return fixed(r, 8);
	case PE_SLEB128: return (uint64_t)sleb(r);
	case PE_SDATA2: return sext(fixed(r, 2), 16);
	case PE_SDATA4: return sext(fixed(r, 4), 32);
	case PE_SDATA8: return fixed(r, 8);
	default:
		r->bad = true;
		return 0;
	}
}

/* What an FDE needs from its CIE. */
struct cie {
	uint8_t fde_enc;             /* 'R' (default: absptr) */
};

/* Parse the CIE whose body (after its id) is [p, end).  false when it
 * cannot be understood (its FDEs are skipped). */
static bool parse_cie(const uint8_t *p, const uint8_t *end, struct cie *c)
{
	struct rd r = { p, end, false };
	uint8_t version = (uint8_t)fixed(&r, 1);
	if (r.bad || (version != 1 && version != 3 && version != 4))
		return false;
	const uint8_t *aug = r.p;
	const uint8_t *nul = memchr(aug, 0, (size_t)(end - aug));
	if (!nul)
		return false;
	r.p = nul + 1;
	if (version == 4) {
		uint8_t addr_size = (uint8_t)fixed(&r, 1);
		(void)fixed(&r, 1);          /* segment selector size */
		if (r.bad || addr_size != 8)
			return false;
	}
	(void)uleb(&r);                       /* code alignment */
	(void)sleb(&r);                       /* data alignment */
	if (version == 1)
		(void)fixed(&r, 1);           /* return address register */
	else
		(void)uleb(&r);
	c->fde_enc = PE_ABSPTR;
	if (r.bad)
		return false;
	if (aug[0] == '\0')
		return true;
	if (aug[0] != 'z')
		return false;                 /* "eh" and the like: pre-'z' formats */
	uint64_t alen = uleb(&r);
	if (r.bad || alen > (uint64_t)(end - r.p))
		return false;
	struct rd a = { r.p, r.p + alen, false };
	for (const uint8_t *l = aug + 1; l < nul; l++) {
		switch (*l) {
		case 'R':
			c->fde_enc = (uint8_t)fixed(&a, 1);
			break;
		case 'P': {
			uint8_t enc = (uint8_t)fixed(&a, 1);
			(void)value(&a, enc);
			break;
		}
		case 'L':
			(void)fixed(&a, 1);
			break;
		case 'S':
		case 'B':
		case 'G':
			break;
		default:
			/* an unknown letter's data cannot be skipped: an 'R' after
			 * it would be misread */
			return false;
		}
		if (a.bad)
			return false;
	}
	/* only pointers this parser can apply: absolute or PC-relative, direct */
	uint8_t app = c->fde_enc & 0x70;
	return c->fde_enc != PE_OMIT && !(c->fde_enc & PE_INDIRECT) && (app == 0 || app == PE_PCREL);
}

/* The CIE of the entry at offset AT of DATA[0, LEN) into *C: false when
 * there is none there (not a whole entry, not a CIE) or it is not
 * understood. */
static bool cie_at(const uint8_t *data, size_t len, size_t at, struct cie *c)
{
	struct rd r = { data + at, data + len, false };
	uint64_t clen = fixed(&r, 4);
	if (clen == 0xffffffffu)
		clen = fixed(&r, 8);
	const uint8_t *body = r.p;
	if (r.bad || clen < 4 || clen > (uint64_t)(r.end - body) || fixed(&r, 4) != 0 || r.bad)
		return false;
	return parse_cie(r.p, body + clen, c);
}

int sp_ehframe_walk(const uint8_t *data, size_t len, uint64_t vaddr,
		    int (*fn)(void *ctx, uint64_t lo, uint64_t hi), void *ctx)
{
	/* the last CIE read (FDEs share a few): its offset + 1 (0: none) */
	size_t last_at = 0;
	bool last_ok = false;
	struct cie c = { 0 };
	size_t off = 0;
	while (off < len) {
		struct rd r = { data + off, data + len, false };
		uint64_t elen = fixed(&r, 4);
		if (r.bad)
			return 1;
		if (elen == 0)
			return 0;                 /* the terminator */
		if (elen == 0xffffffffu) {
			elen = fixed(&r, 8);
			if (r.bad)
				return 1;
		}
		const uint8_t *body = r.p;    /* the id field */
		if (elen < 4 || elen > (uint64_t)(r.end - body))
			return 1;
		const uint8_t *end = body + elen;
		off = (size_t)(end - data);
		uint64_t id = fixed(&r, 4);
		size_t id_off = (size_t)(body - data);
		if (id == 0 || id > id_off)
			continue;                 /* a CIE, or an FDE whose CIE is not in the section */
		/* an FDE: its CIE lies ID bytes before the id field */
		if (last_at != id_off - id + 1) {
			last_at = id_off - id + 1;
			last_ok = cie_at(data, len, id_off - id, &c);
		}
		if (!last_ok)
			continue;
		struct rd fr = { r.p, end, false };
		uint64_t field = vaddr + (uint64_t)(fr.p - data);
		uint64_t lo = value(&fr, c.fde_enc);
		uint64_t range = value(&fr, c.fde_enc & 0x0f);
		if ((c.fde_enc & 0x70) == PE_PCREL)
			lo += field;
		if (!fr.bad && range && lo + range > lo) {
			int stop = fn(ctx, lo, lo + range);
			if (stop)
				return stop;
		}
	}
	return 0;
}
