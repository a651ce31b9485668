/* rawsys — system calls without libc, for code that runs inside probed
 * calls or in signal context: no errno, no PLT, and nothing the application
 * may have probed (a return probe on libc's mmap must not see the runtime's
 * own mmap, nor re-enter the code that made it).  Each returns what the
 * kernel returned: a value, or -errno (the mapping calls: MAP_FAILED). */
#ifndef SP_RAWSYS_H
#define SP_RAWSYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>

static inline __attribute__((always_inline)) long sp_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
	long rc;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(rc)
			 : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return rc;
}

/* The thread pointer (%fs:0 holds its own address: the psABI's TCB; in
 * glibc, the thread's struct pthread), read without a call into libc,
 * whose pthread_self may be probed. */
static inline uintptr_t sp_thread_pointer(void)
{
	uintptr_t tp;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return tp;
}

static inline void *sp_mapped(long rc)
{
	return rc < 0 && rc > -4096 ? MAP_FAILED : (void *)rc;
}

static inline void *sp_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return sp_mapped(sp_syscall6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, off));
}

static inline void *sp_sys_mremap(void *old, size_t old_len, size_t new_len, int flags)
{
	return sp_mapped(sp_syscall6(SYS_mremap, (long)old, (long)old_len, (long)new_len, flags, 0, 0));
}

static inline long sp_sys_munmap(void *addr, size_t len)
{
	return sp_syscall6(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0);
}

#endif
