/* patch — see patch.h for the mechanism and why. */
#include "patch.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t patch_lock = PTHREAD_MUTEX_INITIALIZER;
static int mem_fd = -1;          /* /proc/self/mem, -2 once it failed */
static int sync_state;           /* 0 unknown, 1 registered, -1 unavailable */

static int membarrier(int cmd, unsigned flags)
{
	return (int)syscall(__NR_membarrier, cmd, flags, 0);
}

static int open_mem(void)
{
	if (mem_fd == -1) {
		mem_fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
		if (mem_fd < 0) {
			sp_info("patch: cannot open /proc/self/mem (%s): writing code through mprotect",
				strerror(errno));
			mem_fd = -2;
		}
	}
	return mem_fd;
}

/* Protection of the mapping holding ADDR, from /proc/self/maps. */
static int page_prot(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return PROT_READ | PROT_EXEC;
	char line[512];
	int prot = PROT_READ | PROT_EXEC;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) != 3)
			continue;
		if (addr >= lo && addr < hi) {
			prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) |
			       (p[2] == 'x' ? PROT_EXEC : 0);
			break;
		}
	}
	fclose(f);
	return prot;
}

static int write_mprotect(uintptr_t addr, const void *bytes, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t lo = addr & ~(uintptr_t)(pg - 1);
	uintptr_t hi = (addr + len + pg - 1) & ~(uintptr_t)(pg - 1);
	int prot = page_prot(addr);
	/* Other threads may be executing this page: it must stay executable
	 * while we write, so this fallback is the one place W+X happens. */
	if (mprotect((void *)lo, hi - lo, prot | PROT_WRITE | PROT_EXEC) != 0)
		return -errno;
	memcpy((void *)addr, bytes, len);
	if (mprotect((void *)lo, hi - lo, prot) != 0)
		return -errno;
	return 0;
}

int sp_patch_write(uintptr_t addr, const void *bytes, size_t len)
{
	int rc = 0;
	pthread_mutex_lock(&patch_lock);
	int fd = open_mem();
	if (fd >= 0) {
		ssize_t n = pwrite(fd, bytes, len, (off_t)addr);
		if (n == (ssize_t)len)
			goto out;
		sp_info("patch: /proc/self/mem write at %#lx failed (%s): using mprotect",
			(unsigned long)addr, n < 0 ? strerror(errno) : "short write");
		close(fd);
		mem_fd = -2;
	}
	rc = write_mprotect(addr, bytes, len);
out:
	pthread_mutex_unlock(&patch_lock);
	return rc;
}

void sp_patch_sync(void)
{
	if (sync_state == 0) {
		int cmds = membarrier(MEMBARRIER_CMD_QUERY, 0);
		if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) &&
		    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0) == 0)
			sync_state = 1;
		else {
			sync_state = -1;
			sp_info("patch: membarrier SYNC_CORE unavailable: code changes reach other cores lazily");
		}
	}
	if (sync_state == 1)
		membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0);
	atomic_thread_fence(memory_order_seq_cst);
}

void sp_patch_atfork_child(void)
{
	if (mem_fd >= 0)
		close(mem_fd);
	mem_fd = -1;
	sync_state = 0;   /* registration belongs to the parent's mm */
	pthread_mutex_init(&patch_lock, NULL);
}
