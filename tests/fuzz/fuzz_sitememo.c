/* fuzz_sitememo — the reader of the sites' stored decisions (sitememo.h)
 * on arbitrary bytes.
 *
 * The input is a table's payload as it would sit in a cache entry (its
 * checksum valid: the objcache layer's checks are passed, what is left is
 * this reader's).  Properties: no crash, leak or UB; a table that
 * validates loads into a memo, and every record a lookup returns is in
 * range (a path the decision knows, lengths within the stored bytes, a
 * window for a jmp and none for an int3, an int3's reason a string); a
 * table that does not validate is never used (no lookup answers). */
#include "fuzz_common.h"
#include "objcache.h"
#include "sitememo.h"

#define CHECK(...) FUZZ_CHECK("fuzz_sitememo", __VA_ARGS__)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	static char dir[] = "/tmp/sp-fuzz-sitememo-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	setenv("UPROBE_CACHE", dir, 1);
	if (!sp_objcache_enabled())
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an 8-byte aligned copy, as a mapped entry is */
	uint64_t *copy = malloc(size + 8);
	memcpy(copy, data, size);
	bool valid = sp_sitememo_validate(copy, size) == NULL;
	struct sp_objcache_key obj = { { 0x5eed, size } };
	struct sp_sitememo *m = sp_sitememo_new(&obj, 0x7f0000000000);
	/* stored under the memo's own key: the name sitememo.c derives */
	struct sp_objcache_key key;
	sp_objcache_derive("site", &obj, &key);
	sp_objcache_store("site", &key, copy, size);
	bool active = sp_sitememo_active(m);
	CHECK(active == (valid && size >= 24 && ((const uint64_t *)copy)[1] > 0),
	      "a table that %s is %s", valid ? "validates" : "does not validate", active ? "used" : "not used");
	/* look up keys made of the input's own words (a stored record's
	 * site and extent, where the input holds records) */
	for (size_t off = 24; active && off + 56 <= size && off < 24 + 80 * 64; off += 80) {
		uint64_t w[5];
		memcpy(w, (const uint8_t *)copy + off, sizeof(w));
		const uint64_t none = UINT64_MAX;
		struct sp_sitememo_key k = {
			.site = 0x7f0000000000 + w[0], .func = w[1] == none ? 0 : 0x7f0000000000 + w[1],
			.size = w[2], .limit = w[3] == none ? 0 : 0x7f0000000000 + w[3], .avail = w[4],
			.landing_pads = ((const uint8_t *)copy)[off + 40] != 0,
		};
		struct sp_sitememo_rec r;
		if (!sp_sitememo_get(m, &k, &r))
			continue;
		CHECK(r.path == SP_SITEMEMO_INT3 || r.path == SP_SITEMEMO_JMP5, "path %d", r.path);
		CHECK(r.n_bytes >= 5 && r.n_bytes <= SP_SITEMEMO_BYTES && r.first_len >= 1 && r.first_len <= r.n_bytes,
		      "lengths %d %d", r.n_bytes, r.first_len);
		if (r.path == SP_SITEMEMO_JMP5)
			CHECK(r.n_insns >= 1 && r.wlen >= r.first_len && r.wlen <= r.n_bytes && !r.reason,
			      "a jmp record's window %d/%d", r.n_insns, r.wlen);
		else
			CHECK(!r.n_insns && !r.wlen && r.reason && strlen(r.reason) < size, "an int3 record");
	}
	sp_sitememo_free(m);
	free(copy);
	return 0;
}
