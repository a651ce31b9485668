/* btparts — see btparts.h. */
#include "btparts.h"
#include "bt_shard.h"
#include "stripes.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* The parts that may hold values: those of stripes ever claimed. */
static uint32_t parts_used(const struct sp_shm_section *s, uint32_t n)
{
	uint32_t used = atomic_load(&s->stripes_used);
	return used < n ? used : n;
}

bool sp_btparts_ran(int fd, const struct sp_shm_section *s)
{
	if (atomic_load(&s->bt_ran))
		return true;
	uint64_t off = atomic_load(&s->bt_ran_off);
	uint32_t n = parts_used(s, SP_EXCL_SLOTS);
	for (uint32_t i = 0; off && i < n; i++) {
		char c = 0;
		if (pread(fd, &c, 1, (off_t)(off + (uint64_t)i * s->stripe_bytes)) == 1 && c)
			return true;
	}
	return false;
}

int sp_btparts_map(int fd, const struct sp_shm_section *s, struct bt_program *p, struct sp_btparts *out)
{
	uint32_t k = 0;
	for (struct bt_map *m = p->maps; m; m = m->next, k++) {
		if (k >= SP_SHM_BT_MAPS)
			return -1;
		out->at[k] = NULL;
		uint64_t off = s->bt_part_off[k];
		uint32_t n = parts_used(s, s->bt_part_n[k]);
		if (!off || !n)
			continue;
		bool keyed = s->bt_part_keyed[k];
		uint64_t stride = s->bt_part_stride[k], down = off & ~(uint64_t)4095;
		size_t len = (size_t)(off - down + (n - 1) * stride + bt_shard_part_bytes(m, keyed));
		void *at = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)down);
		if (at == MAP_FAILED)
			return -1;
		out->at[k] = at;
		out->len[k] = len;
		if (bt_shards_attach(m, (unsigned char *)at + (off - down), stride, (int)n, keyed) != 0)
			return -1;
	}
	return 0;
}

void sp_btparts_unmap(struct bt_program *p, struct sp_btparts *parts)
{
	uint32_t k = 0;
	for (struct bt_map *m = p->maps; m && k < SP_SHM_BT_MAPS; m = m->next, k++) {
		bt_shards_free(m);
		if (parts->at[k])
			munmap(parts->at[k], parts->len[k]);
		parts->at[k] = NULL;
	}
}
