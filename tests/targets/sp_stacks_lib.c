/* libsp_stacks_lib.so — the shared-library leg of sp_stacks' call graph:
 * stlib_outer -> stlib_inner -> the caller's callback, so that the stacks
 * of a probe in the program cross two frames of another object. */
#define EXPORT __attribute__((visibility("default"), noinline))

EXPORT int stlib_inner(int (*cb)(int), int x)
{
	return cb(x) + 1;
}

EXPORT int stlib_outer(int (*cb)(int), int x)
{
	return stlib_inner(cb, x) + 1;
}
