// sp_go — the Go target of tests/e2e/e2e_golang.py (and of the real
// programs the compatibility tests run, sptest.real_programs()).
//
// It counts its own calls of the functions the tests probe, with atomic
// counters, and prints them on its last line, so the report's entry and
// return counts can be compared with what the program did:
//
//	counts Work=W Fib=F Deep=D Thrower=T Panics=P Add=A Max=M Cadd=C Kind=K
//
// It runs many goroutines, recursion deep enough to grow (copy) goroutine
// stacks many times, panics recovered through probed frames (a nil
// dereference among them: Go's SIGSEGV handler under ours), runtime.GC()
// while probes are live, cgo calls, a signal delivered to os/signal, and
// exits through os.Exit with status 3 (Go's raw exit_group: no libc exit).
// Kind is a switch go1.19 compiles to a jump table (an indirect jmp).
// Deterministic output.  Argument "quick": a smaller run.
package main

/*
static int cadd(int a, int b) { return a + b; }
*/
import "C"

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

var nWork, nFib, nDeep, nThrower, nPanics, nAdd, nMax, nCadd, nKind int64

type Counter struct{ n int64 }

// Add is a leaf method without a stack check (nosplit): the int3 path.
//
//go:noinline
func (c *Counter) Add(k int64) int64 {
	atomic.AddInt64(&nAdd, 1)
	return atomic.AddInt64(&c.n, k)
}

//go:noinline
func Fib(n int) int {
	atomic.AddInt64(&nFib, 1)
	if n < 2 {
		return n
	}
	return Fib(n-1) + Fib(n-2)
}

// Deep recurses with a 256-byte frame: 10000 levels take the goroutine
// stack from 8 KiB to several MiB, each growth a copy.
//
//go:noinline
func Deep(n int) int {
	atomic.AddInt64(&nDeep, 1)
	var pad [256]byte
	pad[n%256] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return Deep(n-1) + int(pad[n%256]) - int(byte(n))
}

//go:noinline
func Thrower(n int) int {
	atomic.AddInt64(&nThrower, 1)
	if n%3 == 0 {
		atomic.AddInt64(&nPanics, 1)
		panic(fmt.Sprintf("thrown %d", n))
	}
	if n%3 == 1 {
		var p *Counter
		if n%2 == 1 {
			atomic.AddInt64(&nPanics, 1)
			return int(p.n) // nil dereference: SIGSEGV, a runtime panic
		}
	}
	return n
}

//go:noinline
func Catch(n int) (r int) {
	defer func() {
		if recover() != nil {
			r = -1
		}
	}()
	return Thrower(n) + 1
}

func Max[V int | float64](a, b V) V {
	atomic.AddInt64(&nMax, 1)
	if a > b {
		return a
	}
	return b
}

//go:noinline
func Cadd(a, b int) int {
	atomic.AddInt64(&nCadd, 1)
	return int(C.cadd(C.int(a), C.int(b)))
}

// Kind's switch of dense integer cases is a jump table (go1.19 on): cmp;
// ja; lea main.Kind.jumpN(%rip),%rB; jmp *(%rB,%rI,8), with a frame (it
// calls Fib) and a RET per case.  e2e_golang checks the jmp is there.
//
//go:noinline
func Kind(i int) int {
	atomic.AddInt64(&nKind, 1)
	switch i % 11 {
	case 0:
		return Fib(2)
	case 1:
		return 3
	case 2:
		return i * 5
	case 3:
		return Fib(4) + 1
	case 4:
		return i - 7
	case 5:
		return Fib(3) * 2
	case 6:
		return 41
	case 7:
		return i ^ 0x55
	case 8:
		return Fib(5) - i
	case 9:
		return 97
	}
	return -1
}

// Work is what each goroutine runs.
//
//go:noinline
func Work(i int, c *Counter) int {
	atomic.AddInt64(&nWork, 1)
	s := Fib(8+i%6) + Catch(i) + Cadd(i, 1)
	c.Add(1)
	for k := 0; k < 12; k++ {
		s += Kind(i + k)
	}
	if i%10 == 0 {
		s += Deep(200 + i)
	}
	return s
}

func main() {
	quick := len(os.Args) > 1 && os.Args[1] == "quick"
	goroutines, depth := 200, 10000
	if quick {
		goroutines, depth = 40, 2000
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	<-sig

	c := &Counter{}
	var wg sync.WaitGroup
	sums := make([]int, goroutines)
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sums[i] = Work(i, c)
			if i%50 == 0 {
				runtime.GC() // while probes are live, stacks being scanned
			}
		}(i)
	}
	wg.Wait()
	runtime.GC()
	total := 0
	for _, s := range sums {
		total += s
	}
	d := Deep(depth)
	m := Max(3, 4) + int(Max(2.5, 1.5))
	fmt.Printf("total %d deep %d max %d counter %d\n", total, d, m, c.n)
	fmt.Printf("counts Work=%d Fib=%d Deep=%d Thrower=%d Panics=%d Add=%d Max=%d Cadd=%d Kind=%d\n",
		nWork, nFib, nDeep, nThrower, nPanics, nAdd, nMax, nCadd, nKind)
	os.Exit(3)
}
