// sp_go_static — a Go program without cgo: built with CGO_ENABLED=0 it is
// a static executable, which LD_PRELOAD cannot reach (e2e_golang.py
// "static": the launcher must say so).
package main

import "fmt"

//go:noinline
func Fib(n int) int {
	if n < 2 {
		return n
	}
	return Fib(n-1) + Fib(n-2)
}

func main() { fmt.Println("fib", Fib(20)) }
