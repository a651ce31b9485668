/* sp_switch_lib — compiler-made jump tables and computed gotos, built with
 * -O2 -fPIC by gcc (libsp_switch_gcc.so) and by clang
 * (libsp_switch_clang.so) for e2e_decide.py: each function's entry should
 * take the jmp path now that what indirect jumps reach is proven, and be
 * counted exactly from two threads.  No function calls another of the
 * library, so each one's hits are exactly the driver's calls. */
#define API __attribute__((visibility("default"), noinline))

struct methods {
	long (*step)(long);
	long (*finish)(long);
};

/* first in the file: alignment padding follows it, not the next symbol */
API long tc_tail(long a, const struct methods *m)
{
	return m->finish(a);          /* the whole function: jmp *8(%rsi) */
}

API long sw_dense(int op, long a)
{
	switch (op) {
	case 0: return a * 3 + 1;
	case 1: return a ^ 0x55;
	case 2: return a << 2;
	case 3: return a - 77;
	case 4: return a * a;
	case 5: return ~a;
	case 6: return a / 3;
	case 7: return a % 11;
	case 8: return a + (a >> 3);
	case 9: return -a;
	default: return 0;
	}
}

API long sw_offset(int op, long a)
{
	/* cases 100..111: the index is rebased before the table */
	switch (op) {
	case 100: a += 1; break;
	case 101: a *= 5; break;
	case 102: a ^= 0x1234; break;
	case 103: a -= 9; break;
	case 104: a <<= 1; break;
	case 105: a >>= 1; break;
	case 106: a |= 0x100; break;
	case 107: a &= 0xff; break;
	case 108: a = a * a - 1; break;
	case 109: a = 7 - a; break;
	case 110: a /= 7; break;
	case 111: a %= 13; break;
	default: a = -1; break;
	}
	return a;
}

API long sw_loop(const unsigned char *ops, int n, long a)
{
	for (int i = 0; i < n; i++) {
		switch (ops[i] & 7) {
		case 0: a += 3; break;
		case 1: a *= 3; break;
		case 2: a ^= 0xf0f; break;
		case 3: a -= 5; break;
		case 4: a = a * 2 + 1; break;
		case 5: a >>= 1; break;
		case 6: a = ~a; break;
		case 7: a %= 1000003; break;
		}
	}
	return a;
}

API long cg_run(const unsigned char *code, long a)
{
	static const void *const tbl[] = { &&op_add, &&op_mul, &&op_xor, &&op_sub, &&op_end };
	const unsigned char *pc = code;
	goto *tbl[*pc++];
op_add:
	a += 3;
	goto *tbl[*pc++];
op_mul:
	a *= 7;
	goto *tbl[*pc++];
op_xor:
	a ^= 0x5a5a;
	goto *tbl[*pc++];
op_sub:
	a -= 11;
	goto *tbl[*pc++];
op_end:
	return a;
}


API long tc_method(const struct methods *m, long a)
{
	return m->finish(a + 1);      /* a tail call through a method table */
}

API long tc_ptr(long (*f)(long), long a)
{
	return f(a * 2);              /* a tail call through a register */
}
