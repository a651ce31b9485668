/* test_memread — reading our own memory that may be gone (memread.h), and
 * what the registry makes of code that vanished while an item attached: an
 * object unloaded by another thread's dlclose between the listing of the
 * loaded objects and the site's read (a `selfprobe attach` racing the
 * program's churn).  The item is then for the object's next load: -ESTALE,
 * no error recorded, no misleading "already holds an int3". */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "maps.h"
#include "memread.h"
#include "probe.h"
#include "registry.h"
#include "site.h"
#include "spec.h"

Test(memread, mapped_and_gone)
{
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	memset(p, 0x5a, (size_t)page);
	uint8_t buf[16] = { 0 };
	cr_assert(sp_mem_read((uintptr_t)p + 8, buf, sizeof(buf)));
	cr_assert_eq(buf[0], 0x5a);
	cr_assert_eq(buf[15], 0x5a);
	munmap(p, (size_t)page);
	cr_assert_not(sp_mem_read((uintptr_t)p + 8, buf, sizeof(buf)), "an unmapped page reads as gone");
	/* the site table's pristine copy says so too (int3 bytes inside) */
	uint8_t code[8];
	cr_assert_not(sp_site_pristine((uintptr_t)p, sizeof(code), code));
	cr_assert_eq(code[0], 0xcc);
	cr_assert(sp_site_pristine((uintptr_t)buf, sizeof(code), code));
}

static size_t n_errors(void)
{
	size_t n = 0;
	for (const struct sp_error *e = sp_error_first(); e; e = e->next)
		n++;
	return n;
}

Test(memread, item_of_an_object_unloaded_while_it_attaches_waits_for_the_next_load)
{
	const char *lib = TEST_BIN_DIR "/../tests/libsp_dl_lib.so";
	void *h = dlopen(lib, RTLD_NOW);
	cr_assert_not_null(h, "dlopen %s: %s (built by tests/targets)", lib, dlerror());
	struct sp_object *objs;
	size_t n;
	cr_assert_eq(sp_maps_snapshot(&objs, &n), 0);
	char err[256];
	int idx = sp_maps_find(objs, n, lib, err, sizeof(err));
	cr_assert_geq(idx, 0, "%s", err);
	/* the other thread's dlclose, between the listing and the attach */
	cr_assert_eq(dlclose(h), 0);
	uint8_t b;
	cr_assert_not(sp_mem_read(objs[idx].text[0].start, &b, 1), "the library is unmapped");
	char spec[512];
	snprintf(spec, sizeof(spec), "uprobe:%s:dl_func", lib);
	struct sp_spec_item item;
	char *perr = NULL;
	cr_assert_eq(sp_spec_parse_probe(spec, &item, &perr), 0, "%s", perr ? perr : "");
	sp_probe_setup();
	size_t before = n_errors();
	sp_probe_lock();
	long rc = sp_probe_attach_object(&item, &objs[idx], NULL, NULL, NULL);
	sp_probe_unlock();
	cr_assert_eq(rc, -ESTALE, "the attach says the object went away (%ld)", rc);
	cr_assert_eq(n_errors(), before, "nothing recorded as an error (the caller keeps the item)");
	sp_spec_item_free(&item);
	sp_maps_free(objs, n);
}
