package stack

import (
	"testing"
	"unsafe"
)

// deep recurses n frames of about 100 bytes each.
//
//go:noinline
func deep(n int) int {
	var pad [96]byte
	pad[n%96] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%96])
}

// moves reports whether the calling goroutine's stack is copied (grown)
// while it recurses depth frames: the runtime moves a stack to grow it,
// and a local variable's address moves with it.
func moves(depth int) bool {
	var x int
	before := uintptr(unsafe.Pointer(&x))
	deep(depth)
	return uintptr(unsafe.Pointer(&x)) != before
}

// TestGrowSparesLaterGrowth: a new goroutine grows its stack in the
// middle of a deep call; after Grow it does not, as long as the call needs
// less than Size.
func TestGrowSparesLaterGrowth(t *testing.T) {
	const depth = Size / 2 / 128 // about half of Size
	for _, grow := range []bool{false, true} {
		moved := make(chan bool)
		go func() {
			if grow {
				Grow()
			}
			moved <- moves(depth)
		}()
		if got := <-moved; got == grow {
			t.Errorf("after Grow: %v, the stack was copied during the call: %v", grow, got)
		}
	}
}

// BenchmarkDeepCall: a new goroutine making a deep call, with and without
// growing its stack first.
func BenchmarkDeepCall(b *testing.B) {
	for _, grow := range []bool{false, true} {
		name := "fresh"
		if grow {
			name = "grown"
		}
		b.Run(name, func(b *testing.B) {
			done := make(chan struct{})
			for b.Loop() {
				go func() {
					if grow {
						Grow()
					}
					deep(40)
					done <- struct{}{}
				}()
				<-done
			}
		})
	}
}
