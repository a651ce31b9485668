// sp_ret_cxxlib — C++ frames a C program (sp_ret_target dlcancel/dlthrow)
// loads with dlopen, so that libstdc++ and libgcc_s come after the preload's
// own libraries in the process's global scope.  A guard's destructor counts
// each frame unwound: a thread cancelled through cx_dl_outer, and exceptions
// thrown and caught inside the library.
#include <atomic>
#include <stdexcept>

extern "C" void dl_blocked(int fd);   // sp_ret_target's: blocks in read()

static std::atomic<long> destroyed;

struct Guard {
	~Guard() { destroyed++; }
};

extern "C" __attribute__((noinline, visibility("default"))) void cx_dl_outer(int fd)
{
	Guard g;
	dl_blocked(fd);
	asm volatile("" ::"r"(&g) : "memory");
}

static __attribute__((noinline)) void cx_dl_thrower(long i)
{
	Guard g;
	if (i >= 0)
		throw std::runtime_error("thrown");
	asm volatile("" ::"r"(&g) : "memory");
}

extern "C" __attribute__((visibility("default"))) long cx_dl_throw(long n)
{
	long caught = 0;
	for (long i = 0; i < n; i++) {
		try {
			cx_dl_thrower(i);
		} catch (const std::exception &) {
			caught++;
		}
	}
	return caught;
}

extern "C" __attribute__((visibility("default"))) long cx_dl_destroyed(void)
{
	return destroyed;
}
