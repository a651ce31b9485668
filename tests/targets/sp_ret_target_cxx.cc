// sp_ret_target_cxx — C++ exceptions through return-probed frames.
//
//   sp_ret_target_cxx MODE [N]
//
//   throw N     f3 throws through f3, f2, f1 (each with a destructor that
//               prints for the first iterations); main catches; N times,
//               then N normal calls of f1 (→ f2 → f3)
//   rethrow N   the same, but f1 catches, prints and rethrows (throw;)
//   catcher N   catcher() catches what f1 throws and returns normally: its
//               own frame is not unwound
//   local N     lc_outer → lc_inner, which throws and catches inside itself:
//               no probed frame is unwound
//   cancel N    N threads, one at a time: cx_outer → cx_mid → cx_inner, each
//               with a destructor, blocked in read(); pthread_cancel'd and
//               joined.  Prints "cancelled K", "destructors D": the forced
//               unwind runs every destructor (D = 3K), probed or not
//
// Prints what it caught and then "name calls" for every function called.
#include <atomic>
#include <pthread.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#define PROBED extern "C" __attribute__((noinline, noclone, used, visibility("default")))
#define KEEP(v) __asm__ volatile("" : "+r"(v) :: "memory")

enum { F1, F2, F3, CATCHER, LC_OUTER, LC_INNER, CX_OUTER, CX_MID, CX_INNER, FN };
static const char *const names[FN] = { "f1", "f2", "f3", "catcher", "lc_outer", "lc_inner",
				       "cx_outer", "cx_mid", "cx_inner" };
static std::atomic<long> calls[FN];
static volatile long sink;

#define CALLED(f) calls[f].fetch_add(1, std::memory_order_relaxed)

namespace {
struct Noisy {
	const char *name;
	long i;
	~Noisy()
	{
		if (i >= 0 && i < 3)
			std::printf("~%s %ld\n", name, i);
		sink += i;
	}
};
}

PROBED long f3(long i)
{
	CALLED(F3);
	Noisy n{ "f3", i };
	if (i >= 0)
		throw std::runtime_error("boom " + std::to_string(i));
	KEEP(i);
	return i + 3;
}

PROBED long f2(long i)
{
	CALLED(F2);
	Noisy n{ "f2", i };
	long r = f3(i);
	KEEP(r);
	return r + 2;
}

static bool rethrow;

PROBED long f1(long i)
{
	CALLED(F1);
	Noisy n{ "f1", i };
	long r;
	if (!rethrow) {
		r = f2(i);
	} else {
		try {
			r = f2(i);
		} catch (const std::exception &e) {
			if (i < 3)
				std::printf("f1 rethrows %s\n", e.what());
			throw;
		}
	}
	KEEP(r);
	return r + 1;
}

PROBED int catcher(long i)
{
	CALLED(CATCHER);
	try {
		long r = f1(i);
		KEEP(r);
	} catch (const std::exception &e) {
		if (i < 3)
			std::printf("catcher caught %s\n", e.what());
		return 1;
	}
	return 0;
}

PROBED long lc_inner(long i)
{
	CALLED(LC_INNER);
	try {
		if (i >= 0)
			throw i;
	} catch (long v) {
		return v * 2;
	}
	return -1;
}

PROBED long lc_outer(long i)
{
	CALLED(LC_OUTER);
	long r = lc_inner(i);
	KEEP(r);
	return r + 1;
}

// ---- cancel

static std::atomic<long> destructors;
static std::atomic<int> blocked;

namespace {
struct Counted {
	~Counted() { destructors.fetch_add(1); }
};
}

PROBED long cx_inner(int fd)
{
	CALLED(CX_INNER);
	Counted c;
	char b;
	blocked.store(1);
	long r = read(fd, &b, 1);   // a cancellation point; nobody writes
	KEEP(r);
	return r;
}

PROBED long cx_mid(int fd)
{
	CALLED(CX_MID);
	Counted c;
	long r = cx_inner(fd);
	KEEP(r);
	return r + 1;
}

PROBED long cx_outer(int fd)
{
	CALLED(CX_OUTER);
	Counted c;
	long r = cx_mid(fd);
	KEEP(r);
	return r + 1;
}

static void *cx_thread(void *arg)
{
	long r = cx_outer((int)(long)arg);
	KEEP(r);
	return nullptr;
}

static int mode_cancel(long n)
{
	int fds[2];
	if (pipe(fds))
		return 2;
	long cancelled = 0;
	for (long i = 0; i < n; i++) {
		blocked.store(0);
		pthread_t t;
		if (pthread_create(&t, nullptr, cx_thread, (void *)(long)fds[0]))
			return 2;
		while (!blocked.load())
			usleep(100);
		usleep(2000);   // into read()
		pthread_cancel(t);
		void *r;
		pthread_join(t, &r);
		cancelled += r == PTHREAD_CANCELED;
	}
	std::printf("cancelled %ld\ndestructors %ld\n", cancelled, destructors.load());
	return 0;
}

static void print_counts()
{
	for (int i = 0; i < FN; i++)
		if (calls[i].load())
			std::printf("%s %ld\n", names[i], calls[i].load());
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		std::fprintf(stderr, "usage: %s throw|rethrow|catcher|local|cancel [N]\n", argv[0]);
		return 2;
	}
	long n = argc > 2 ? std::atol(argv[2]) : 1000;
	std::string mode = argv[1];
	long caught = 0, sum = 0;
	if (mode == "throw" || mode == "rethrow") {
		rethrow = mode == "rethrow";
		for (long i = 0; i < n; i++) {
			try {
				sum += f1(i);
			} catch (const std::runtime_error &e) {
				if (i < 3)
					std::printf("main caught %s\n", e.what());
				caught++;
			}
		}
		for (long i = 0; i < n; i++)
			sum += f1(-1 - i);
	} else if (mode == "catcher") {
		for (long i = 0; i < n; i++)
			caught += catcher(i);
		for (long i = 0; i < n; i++)
			caught += catcher(-1 - i);
	} else if (mode == "cancel") {
		int rc = mode_cancel(n);
		print_counts();
		return rc;
	} else if (mode == "local") {
		for (long i = 0; i < n; i++)
			sum += lc_outer(i);
	} else {
		std::fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	std::printf("caught %ld sum %ld\n", caught, sum);
	print_counts();
	return 0;
}
