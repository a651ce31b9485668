/* Tests for outfile.c: a named output written whole and renamed over its
 * target, or in place where a rename must not replace it; nothing left in
 * the directory but the target, whatever happened.  Each test in a fresh
 * directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outfile.h"

static char dir[] = "/tmp/sp-outfile-XXXXXX";
static char target[PATH_MAX];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(target, sizeof(target), "%s/r.json", dir);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(outfile, .init = setup, .fini = teardown);

static void put(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

static char *get(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* The names in the directory, but the target's and NAMED's: what a write
 * left behind. */
static int others(const char *named)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "r.json") &&
		     (!named || strcmp(e->d_name, named));
	closedir(d);
	return n;
}

static ino_t ino(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	return st.st_ino;
}

Test(outfile, replaces_by_rename_keeping_the_mode)
{
	put(target, "old\n", 0640);
	ino_t old = ino(target);
	struct sp_outfile o;
	FILE *f = sp_outfile_open(&o, target, 512);
	cr_assert_not_null(f);
	cr_assert_null(o.in_place);
	cr_assert_geq(fileno(f), 3, "a descriptor the program may own");
	fputs("new\n", f);
	cr_assert_str_eq(get(target), "old\n", "the target changed before the close");
	cr_assert_eq(sp_outfile_close(&o, f, 0), 0);
	cr_assert_str_eq(get(target), "new\n");
	cr_assert_neq(ino(target), old, "written into the old file");
	struct stat st;
	cr_assert_eq(stat(target, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
	cr_assert_eq(others(NULL), 0, "a temporary file left");
}

Test(outfile, a_writers_error_leaves_the_target_as_it_was)
{
	put(target, "old\n", 0644);
	struct sp_outfile o;
	FILE *f = sp_outfile_open(&o, target, 0);
	cr_assert_not_null(f);
	fputs("half", f);
	cr_assert_eq(sp_outfile_close(&o, f, -ENOSPC), -ENOSPC);
	cr_assert_str_eq(get(target), "old\n");
	cr_assert_eq(others(NULL), 0, "a temporary file left");
	/* and when there was none, none appears */
	cr_assert_eq(unlink(target), 0);
	f = sp_outfile_open(&o, target, 0);
	cr_assert_not_null(f);
	cr_assert_eq(sp_outfile_close(&o, f, -EIO), -EIO);
	cr_assert_eq(access(target, F_OK), -1);
	cr_assert_eq(others(NULL), 0, "a temporary file left");
}

Test(outfile, a_file_with_another_name_is_written_in_place)
{
	char other[PATH_MAX];
	snprintf(other, sizeof(other), "%s/other", dir);
	put(target, "old contents, longer\n", 0644);
	cr_assert_eq(link(target, other), 0);
	struct sp_outfile o;
	FILE *f = sp_outfile_open(&o, target, 0);
	cr_assert_not_null(f);
	cr_assert_not_null(o.in_place);
	fputs("new\n", f);
	cr_assert_eq(sp_outfile_close(&o, f, 0), 0);
	cr_assert_str_eq(get(other), "new\n", "the other name lost the report (or kept old bytes)");
	cr_assert_eq(ino(target), ino(other));
	cr_assert_eq(others("other"), 0, "a temporary file left");
}

Test(outfile, refused_as_a_plain_open_refuses)
{
	struct sp_outfile o;
	char missing[PATH_MAX];
	snprintf(missing, sizeof(missing), "%s/no/r.json", dir);
	errno = 0;
	cr_assert_null(sp_outfile_open(&o, missing, 0));
	cr_assert_eq(errno, ENOENT);
	/* a symlink at the target: ELOOP, the file it names untouched */
	char victim[PATH_MAX];
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	put(victim, "victim\n", 0644);
	cr_assert_eq(symlink(victim, target), 0);
	errno = 0;
	cr_assert_null(sp_outfile_open(&o, target, 0));
	cr_assert_eq(errno, ELOOP);
	cr_assert_str_eq(get(victim), "victim\n");
	cr_assert_eq(others("victim"), 0, "a temporary file left");
}

Test(outfile, a_device_is_written_in_place)
{
	struct sp_outfile o;
	FILE *f = sp_outfile_open(&o, "/dev/null", 0);
	cr_assert_not_null(f);
	cr_assert_not_null(o.in_place);
	fputs("report\n", f);
	cr_assert_eq(sp_outfile_close(&o, f, 0), 0);
	f = sp_outfile_open(&o, "/dev/full", 0);
	cr_assert_not_null(f);
	fputs("report\n", f);
	cr_assert_eq(sp_outfile_close(&o, f, 0), -ENOSPC);
}
