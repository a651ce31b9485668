#!/bin/sh
# gen_seeds.sh DIR — small ELF seed files for fuzz_elf, built from source so
# no binaries are checked in: an executable and a shared object with
# function symbols and stapsdt notes (semaphore, every operand form), their
# stripped copies (.dynsym only), a relocatable object, and a static
# no-libc executable.  Each well under 64 KiB.
set -eu
out=$1
cc=${CC:-cc}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/seed.c" <<'C'
#include <sys/sdt.h>
unsigned short seed_prov_hit_semaphore __attribute__((section(".probes")));
long g_var = 5;
__attribute__((noinline)) int seed_add(int a, long b) { STAP_PROBE2(seed_prov, add, a, b); return a + (int)b; }
__attribute__((noinline)) long seed_mem(long *p, int i)
{
	STAP_PROBE3(seed_prov, mem, p[i], g_var, i);
	if (seed_prov_hit_semaphore)
		STAP_PROBE1(seed_prov, hit, *p);
	return p[i] * 2;
}
int seed_main(int argc) { long v[4] = { 1, 2, 3, 4 }; return seed_add(argc, 2) + (int)seed_mem(v, argc & 3); }
#ifdef MAIN
int main(int argc, char **argv) { (void)argv; return seed_main(argc); }
#endif
C
cat > "$tmp/tiny.c" <<'C'
#include <sys/sdt.h>
__attribute__((noinline)) int tiny_f(int x) { STAP_PROBE1(tiny, f, x); return x * 3; }
void _start(void) { int r = tiny_f(2); __asm__ volatile("mov $60, %%eax; mov %0, %%edi; syscall" :: "r"(r) : "rax", "rdi"); }
C
$cc -Os -g0 -DMAIN "$tmp/seed.c" -o "$out/seed_exe"
$cc -Os -g0 -fPIC -shared "$tmp/seed.c" -o "$out/seed_lib.so"
$cc -Os -g0 -c "$tmp/seed.c" -o "$out/seed.o"
$cc -Os -g0 -static -nostdlib -fno-pie -no-pie "$tmp/tiny.c" -o "$out/tiny_static"
objcopy --strip-all "$out/seed_exe" "$out/seed_exe.stripped"
objcopy --strip-all "$out/seed_lib.so" "$out/seed_lib.so.stripped"
# a truncated copy: the headers and part of the sections
head -c 3000 "$out/seed_lib.so" > "$out/seed_lib.so.truncated"
touch "$out.stamp"
