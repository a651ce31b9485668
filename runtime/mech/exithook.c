/* exithook — see exithook.h. */
#include "exithook.h"
#include "log.h"
#include "maps.h"
#include "patch.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static void (*libc_hook)(void);     /* what __libc_atexit held: _IO_cleanup */
static void (*report_fn)(void);
static bool active;

static void late_exit(void)
{
	libc_hook();   /* stdio's last flushes: still the application's */
	report_fn();
}

/* The ELF address and size of section NAME in PATH. */
static int find_section(const char *path, const char *name, uint64_t *addr, uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = -ENOENT;
	elf_version(EV_CURRENT);
	Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
	size_t shstrndx;
	if (elf && elf_getshdrstrndx(elf, &shstrndx) == 0) {
		for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
			GElf_Shdr sh;
			const char *n = gelf_getshdr(scn, &sh) ? elf_strptr(elf, shstrndx, sh.sh_name) : NULL;
			if (n && strcmp(n, name) == 0) {
				*addr = sh.sh_addr;
				*size = sh.sh_size;
				rc = 0;
				break;
			}
		}
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return rc;
}

int sp_exithook_install(void (*report)(void))
{
	if (active)
		return 0;
	struct sp_object *objs;
	size_t n;
	int rc = sp_maps_snapshot(&objs, &n);
	if (rc)
		return rc;
	char err[256];
	int libc = sp_maps_find(objs, n, "libc.so.6", err, sizeof(err));
	uint64_t addr = 0, size = 0;
	rc = libc < 0 ? libc : find_section(objs[libc].path, "__libc_atexit", &addr, &size);
	if (rc == 0 && size != sizeof(void *))
		rc = -ENOTSUP;   /* more than libc's one entry: a layout we do not know */
	uintptr_t slot = rc == 0 ? objs[libc].bias + addr : 0;
	void (*hook)(void) = rc == 0 ? *(void (**)(void))slot : NULL;
	if (rc == 0 && !sp_maps_in_text(&objs[libc], (uintptr_t)hook, 1))
		rc = -EINVAL;    /* not a function of libc's: leave it alone */
	if (rc == 0) {
		libc_hook = hook;
		report_fn = report;
		void (*mine)(void) = late_exit;
		rc = sp_patch_write(slot, &mine, sizeof(mine));
	}
	active = rc == 0;
	if (rc)
		sp_info("exit report: libc's __libc_atexit cannot be used (%s): reporting from an atexit handler",
			strerror(-rc));
	sp_maps_free(objs, n);
	return rc;
}

bool sp_exithook_active(void)
{
	return active;
}
