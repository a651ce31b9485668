/* sp_bt_cxx — the C++ workload of the bpftrace ustack goldens (e2e_bt.py):
 * frames whose names demangle to namespaces, a template, a static and a
 * const member, overloads with parameter lists.  Built with frame
 * pointers (bpftrace walks user stacks by them).
 *   sp_bt_cxx [wait]  "wait": first read a line from stdin (bpftrace -p
 *                    attaches before the calls), then the calls: ns::Box<T>::leaf
 *                    reached through ns::over(int) 3 times and through
 *                    ns::over(char const*, double) 4 times (no two keys
 *                    of the goldens tie: bpftrace leaves their order
 *                    open), then cx_end();
 *                    then read stdin to its end (bpftrace names a user
 *                    stack's frames only while the process lives)
 * It prints nothing on stdout: the maps are compared there. */
#include <unistd.h>

namespace ns {
template <typename T> struct Box {
	T v;
	__attribute__((noinline)) long get(long x) const;
	__attribute__((noinline)) static long leaf(long x);
};

/* not a leaf: it has a frame, and every caller is on the frame-pointer chain */
__attribute__((noinline)) void done()
{
	__asm__ volatile("" ::: "memory");
}

template <typename T> long Box<T>::leaf(long x)
{
	done();
	return x + 1;
}

template <typename T> long Box<T>::get(long x) const
{
	long r = leaf(x + (long)v);
	__asm__ volatile("" ::: "memory");
	return r + 1;
}

__attribute__((noinline)) long over(int x)
{
	Box<int> b = { x };
	long r = b.get(x);
	__asm__ volatile("" ::: "memory");
	return r + 1;
}

__attribute__((noinline)) long over(const char *s, double)
{
	Box<char> b = { s[0] };
	long r = b.get(1);
	__asm__ volatile("" ::: "memory");
	return r + 1;
}
}

extern "C" __attribute__((noinline)) void cx_end(void)
{
	__asm__ volatile("" ::: "memory");
}

static volatile int rounds_int = 3, rounds_str = 4;   /* loops kept, not unrolled */

int main(int argc, char **argv)
{
	(void)argv;
	char c;
	if (argc > 1)
		while (read(0, &c, 1) > 0 && c != '\n')
			;
	long s = 0;
	for (int i = 0; i < rounds_int; i++)
		s += ns::over(i);
	for (int i = 0; i < rounds_str; i++)
		s += ns::over("x", 1.0);
	cx_end();
	if (argc > 1)
		while (read(0, &c, 1) > 0)
			;
	return s == 0;
}
