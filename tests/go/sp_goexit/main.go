// sp_goexit — the Go target of e2e_golang's goexit, recover and late cases:
// goroutines that end while return-probed frames are on their stacks, and
// probes attached while goroutines run.
//
//	sp_goexit goexit ROUNDS GOROUTINES DEPTH
//	    each round: GOROUTINES goroutines, all alive at once (each its own
//	    g), each descends Down DEPTH+1 frames, parks, then runtime.Goexit;
//	    after the first round (its goroutines gone) the report is written
//	    to $SP_GOEXIT_MID through the runtime's C API (selfprobe_write_report)
//	sp_goexit recover ITER GOROUTINES
//	    the main goroutine (which never ends) recovers ITER panics thrown
//	    4 Boom frames deep by an unprobed guard, then calls Boom(-1), which
//	    returns; GOROUTINES goroutines each recover one panic thrown 3 Boom
//	    frames deep, then end normally
//	sp_goexit late WORKERS CALLS
//	    WORKERS goroutines (more than GOMAXPROCS: the scheduler preempts them
//	    asynchronously) loop calling Spin while $SP_GOEXIT_LATE is attached
//	    through selfprobe_attach_spec; then each calls Late CALLS times
//	sp_goexit rearm WORKERS CALLS
//	    $SP_GOEXIT_EARLY was attached through selfprobe_attach by a C
//	    constructor, before the Go runtime started (no goroutine yet); WORKERS
//	    goroutines each call Late CALLS times, the report goes to
//	    $SP_GOEXIT_MID; then, while WORKERS goroutines spin in Spin, the
//	    probe is detached and attached again (selfprobe_detach, then
//	    selfprobe_attach); then each calls Late CALLS times again
//
// Prints its own counts last: "counts Down=D Boom=B Late=L".
package main

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

static int sp_call_str(const char *fn, const char *arg)
{
	int (*f)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, fn);
	return f ? f(arg) : -1000;
}

// rearm: a probe attached before the Go runtime starts (a C constructor runs
// before it), then detached and attached again while goroutines run
typedef void *(*sp_attach_fn)(const char *, void *, void *);
static void *sp_early;

__attribute__((constructor)) static void sp_attach_early(void)
{
	const char *spec = getenv("SP_GOEXIT_EARLY");
	sp_attach_fn at = (sp_attach_fn)dlsym(RTLD_DEFAULT, "selfprobe_attach");
	if (spec && at)
		sp_early = at(spec, NULL, NULL);
}

static int sp_rearm(void)
{
	int (*de)(void *) = (int (*)(void *))dlsym(RTLD_DEFAULT, "selfprobe_detach");
	sp_attach_fn at = (sp_attach_fn)dlsym(RTLD_DEFAULT, "selfprobe_attach");
	if (!sp_early || !de || !at)
		return -1000;
	if (de(sp_early) != 0)
		return -1001;
	sp_early = at(getenv("SP_GOEXIT_EARLY"), NULL, NULL);
	return sp_early ? 0 : -1002;
}
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

var nDown, nBoom, nLate, nBusy, nRatio int64

func selfprobe(fn, arg string) int {
	cf, ca := C.CString(fn), C.CString(arg)
	defer C.free(unsafe.Pointer(cf))
	defer C.free(unsafe.Pointer(ca))
	return int(C.sp_call_str(cf, ca))
}

//go:noinline
func Down(n int, park chan struct{}) int {
	atomic.AddInt64(&nDown, 1)
	if n == 0 {
		<-park
		runtime.Goexit()
	}
	return Down(n-1, park) + 1
}

//go:noinline
func Boom(n int) int {
	atomic.AddInt64(&nBoom, 1)
	if n == 0 {
		panic("boom")
	}
	if n < 0 {
		return 0
	}
	return Boom(n-1) + 1
}

// guard is not probed: the frames its recover unwinds are found by no
// probed frame's return.
//
//go:noinline
func guard(n int) (r int) {
	defer func() {
		if recover() != nil {
			r = -1
		}
	}()
	return Boom(n)
}

//go:noinline
func Busy(i int) int {
	atomic.AddInt64(&nBusy, 1)
	s := 0
	for k := 0; k < 200; k++ {
		s += (i*k)%7 + k
	}
	return s
}

// Spin is what the workers run while the late attach patches it.
//
//go:noinline
func Spin(i int) int {
	return Busy(i) + 2
}

//go:noinline
func Late(i int) int {
	atomic.AddInt64(&nLate, 1)
	return Busy(i) + Ratio(int32(i)+7, int32(i%5)+1)
}

// Ratio's int32 division is CLTD (one byte) then IDIVL: a site whose
// first instruction is too short for a hop.
//
//go:noinline
func Ratio(a, b int32) int {
	atomic.AddInt64(&nRatio, 1)
	return int(a/b) + Busy(int(b))
}

// settle waits until only BASE goroutines are left: the ended ones have
// been through runtime.goexit1 (wg.Wait returns when their deferred Done
// ran, before that).
func settle(base int) {
	for runtime.NumGoroutine() > base {
		time.Sleep(time.Millisecond)
	}
}

func goexit(rounds, n, depth int) {
	base := runtime.NumGoroutine()
	for r := 0; r < rounds; r++ {
		park := make(chan struct{})
		var started, wg sync.WaitGroup
		for i := 0; i < n; i++ {
			started.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				started.Done()
				Down(depth, park)
			}()
		}
		started.Wait()
		close(park)
		wg.Wait()
		settle(base)
		if r == 0 {
			if out := os.Getenv("SP_GOEXIT_MID"); out != "" {
				fmt.Printf("mid report %d\n", selfprobe("selfprobe_write_report", out))
			}
		}
	}
}

func recovers(iter, n int) {
	for i := 0; i < iter; i++ {
		guard(3)
	}
	Boom(-1)
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			guard(2)
		}()
	}
	wg.Wait()
	settle(base)
}

func late(workers, calls int) {
	stop := spinning(workers)
	time.Sleep(50 * time.Millisecond) // preemption under way
	fmt.Printf("late attach %d\n", selfprobe("selfprobe_attach_spec", os.Getenv("SP_GOEXIT_LATE")))
	time.Sleep(50 * time.Millisecond)
	stop()
	lates(workers, calls)
}

// spinning runs WORKERS goroutines calling Spin until the returned stop is called.
func spinning(workers int) func() {
	var stop int32
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for atomic.LoadInt32(&stop) == 0 {
				Spin(i)
			}
		}(i)
	}
	return func() {
		atomic.StoreInt32(&stop, 1)
		wg.Wait()
	}
}

// lates has WORKERS goroutines call Late CALLS times each.
func lates(workers, calls int) {
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; k < calls; k++ {
				Late(i + k)
			}
		}(i)
	}
	wg.Wait()
}

func rearm(workers, calls int) {
	lates(workers, calls)
	if out := os.Getenv("SP_GOEXIT_MID"); out != "" {
		fmt.Printf("mid report %d\n", selfprobe("selfprobe_write_report", out))
	}
	stop := spinning(workers)
	time.Sleep(50 * time.Millisecond) // preemption under way
	fmt.Printf("rearm %d\n", int(C.sp_rearm()))
	time.Sleep(50 * time.Millisecond)
	stop()
	lates(workers, calls)
}

func main() {
	arg := func(i, def int) int {
		if len(os.Args) > i {
			if v, err := strconv.Atoi(os.Args[i]); err == nil {
				return v
			}
		}
		return def
	}
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "goexit":
		goexit(arg(2, 1), arg(3, 100), arg(4, 9))
	case "recover":
		recovers(arg(2, 100), arg(3, 50))
	case "late":
		late(arg(2, 16), arg(3, 1000))
	case "rearm":
		rearm(arg(2, 16), arg(3, 1000))
	}
	fmt.Printf("counts Down=%d Boom=%d Late=%d\n", nDown, nBoom, nLate)
}
