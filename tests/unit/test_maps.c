/* maps: the snapshot of loaded objects and object-name matching. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maps.h"
#include "unit.h"

#define FIXTURE TEST_LIB_DIR "/libsp_fixture.so"

static struct sp_object *objs;
static size_t n_objs;
static char err[1024];

static void snap(void)
{
	sp_maps_free(objs, n_objs);
	objs = NULL;
	cr_assert_eq(sp_maps_snapshot(&objs, &n_objs), 0);
	cr_assert_gt(n_objs, 1);
}

static void teardown(void)
{
	sp_maps_free(objs, n_objs);
	objs = NULL;
	n_objs = 0;
}

TestSuite(maps, .init = snap, .fini = teardown);

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int find(const char *name)
{
	err[0] = '\0';
	return sp_maps_find(objs, n_objs, name, err, sizeof(err));
}

/* A function of the test binary itself. */
static __attribute__((noinline)) int main_exe_function(int x)
{
	return x * 7;
}

Test(maps, main_executable_is_first_and_named_by_proc_self_exe)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert_gt(len, 0);
	exe[len] = '\0';

	cr_assert(objs[0].is_main);
	cr_assert_str_eq(objs[0].path, exe);
	for (size_t i = 1; i < n_objs; i++)
		cr_assert_not(objs[i].is_main, "%s", objs[i].path);

	int i = find(NULL);
	cr_assert_eq(i, 0, "%s", err);
	cr_assert_eq(find(exe), 0, "%s", err);
}

Test(maps, vdso_is_skipped_and_paths_are_absolute)
{
	for (size_t i = 0; i < n_objs; i++) {
		cr_assert_neq(strstr(objs[i].path, "linux-vdso"), objs[i].path);
		cr_assert_eq(objs[i].path[0], '/', "%s", objs[i].path);
		cr_assert_gt(objs[i].n_text, 0, "%s has no text", objs[i].path);
	}
}

Test(maps, libc_by_name_soname_and_path)
{
	int i = find("libc");
	cr_assert_geq(i, 0, "%s", err);
	cr_assert_str_eq(base(objs[i].path), "libc.so.6");
	cr_assert_eq(find("libc.so.6"), i, "%s", err);
	cr_assert_eq(find(objs[i].path), i, "%s", err);
	/* The unresolved name through a symlink resolves to the same file. */
	cr_assert_eq(find("/lib/x86_64-linux-gnu/libc.so.6"), i, "%s", err);
	/* "libc" must not be confused with libcriterion (a plain prefix). */
	cr_assert_eq(find("libcriterion"), find("libcriterion.so"));
	cr_assert_neq(find("libcriterion"), i);
}

Test(maps, not_loaded_gives_enoent_with_the_list)
{
	cr_assert_eq(find("libdoesnotexist"), -ENOENT);
	cr_assert_not_null(strstr(err, "'libdoesnotexist' is not loaded"), "%s", err);
	/* the list names loaded libraries (which ones come first depends on
	 * the build: sanitizer runtimes are loaded before libc) */
	cr_assert_not_null(strstr(err, "loaded objects: "), "%s", err);
	cr_assert_not_null(strstr(strstr(err, "loaded objects: "), ".so"), "%s", err);
	cr_assert_eq(find("/no/such/lib.so"), -ENOENT);
	cr_assert_not_null(strstr(err, "is not loaded"), "%s", err);
	cr_assert_eq(find(""), -EINVAL);
}

Test(maps, ambiguous_plain_prefix_is_einval)
{
	/* Two prefix candidates and no better rank: "lib" matches every
	 * library by plain prefix only. */
	cr_assert_eq(find("lib"), -EINVAL);
	cr_assert_not_null(strstr(err, "'lib' is ambiguous:"), "%s", err);
	cr_assert_not_null(strstr(err, "libc.so.6"), "%s", err);
}

Test(maps, text_ranges_hold_known_functions)
{
	int libc = find("libc");
	cr_assert_geq(libc, 0, "%s", err);
	void *getpid_addr = dlsym(RTLD_DEFAULT, "getpid");
	cr_assert_not_null(getpid_addr);
	cr_assert(sp_maps_in_text(&objs[libc], (uintptr_t)getpid_addr, 1));
	cr_assert_not(sp_maps_in_text(&objs[0], (uintptr_t)getpid_addr, 1));

	uintptr_t f = (uintptr_t)main_exe_function;
	cr_assert(sp_maps_in_text(&objs[0], f, 5));
	cr_assert_not(sp_maps_in_text(&objs[libc], f, 1));
	/* Data is not text. */
	cr_assert_not(sp_maps_in_text(&objs[0], (uintptr_t)&n_objs, 1));
	cr_assert_not(sp_maps_in_text(&objs[0], UINTPTR_MAX - 1, 4));
	cr_assert_eq(main_exe_function(1), 7);
}

Test(maps, range_end_is_exclusive)
{
	const struct sp_range *r = &objs[0].text[0];
	cr_assert(sp_maps_in_text(&objs[0], r->end - 1, 1));
	cr_assert_not(sp_maps_in_text(&objs[0], r->end - 1, 2));
	cr_assert_not(sp_maps_in_text(&objs[0], r->end, 1));
}

Test(maps, dlopened_fixture_is_found_with_its_bias)
{
	cr_assert_eq(find("libsp_fixture"), -ENOENT);
	void *h = dlopen(FIXTURE, RTLD_NOW);
	cr_assert_not_null(h, "%s", dlerror());
	snap();

	int i = find("libsp_fixture");
	cr_assert_geq(i, 0, "%s", err);
	char real[PATH_MAX];
	cr_assert_not_null(realpath(FIXTURE, real));
	cr_assert_str_eq(objs[i].path, real);
	cr_assert_eq(find(FIXTURE), i, "%s", err);
	cr_assert_eq(find("libsp_fixture.so"), i, "%s", err);

	void *add = dlsym(h, "fixture_add");
	cr_assert_not_null(add);
	cr_assert(sp_maps_in_text(&objs[i], (uintptr_t)add, 1));
	Dl_info info;
	cr_assert(dladdr(add, &info));
	cr_assert_eq((uintptr_t)info.dli_fbase, objs[i].bias);
	dlclose(h);
}


/* The index of the object loaded at handle H's base. */
static int at_base_of(void *h, const char *sym)
{
	Dl_info info;
	cr_assert(dladdr(dlsym(h, sym), &info));
	snap();
	for (size_t i = 0; i < n_objs; i++)
		if (objs[i].bias == (uintptr_t)info.dli_fbase)
			return (int)i;
	cr_assert_fail("no object at %p", info.dli_fbase);
	return -1;
}

/* An object's path is the file it was loaded from, resolved once: a
 * symlink changed after the load does not rename it (each snapshot
 * resolved it again, through the new link); unloaded and loaded again,
 * it is resolved afresh. */
Test(maps, a_loaded_objects_path_is_resolved_once)
{
	char dir[] = "/tmp/sp-maps-XXXXXX", one[64], two[64], link[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(one, sizeof(one), "%s/one.so", dir);
	snprintf(two, sizeof(two), "%s/two.so", dir);
	snprintf(link, sizeof(link), "%s/lib.so", dir);
	unit_copy_file(FIXTURE, one);
	unit_copy_file(FIXTURE, two);
	cr_assert_eq(symlink("one.so", link), 0);

	void *h = dlopen(link, RTLD_NOW);
	cr_assert_not_null(h, "%s", dlerror());
	int i = at_base_of(h, "fixture_add");
	cr_assert_str_eq(objs[i].path, one);
	cr_assert_eq(unlink(link), 0);
	cr_assert_eq(symlink("two.so", link), 0);
	i = at_base_of(h, "fixture_add");
	cr_assert_str_eq(objs[i].path, one, "the file loaded is still one.so");
	cr_assert_eq(dlclose(h), 0);

	h = dlopen(link, RTLD_NOW);
	cr_assert_not_null(h, "%s", dlerror());
	i = at_base_of(h, "fixture_add");
	cr_assert_str_eq(objs[i].path, two, "loaded again: through the link as it is now");
	dlclose(h);
	unlink(link);
	unlink(one);
	unlink(two);
	rmdir(dir);
}
