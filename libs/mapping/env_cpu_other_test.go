//go:build !linux

package mapping

import "testing"

// cpuPerOp runs fn b.N times (thread CPU time is measured on Linux only).
func cpuPerOp(b *testing.B, fn func()) {
	b.ResetTimer()
	for b.Loop() {
		fn()
	}
}
