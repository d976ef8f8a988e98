//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package mllp

import "net"

// peekSocket has no non-blocking peek on this platform: the caller falls
// back to a read with a short deadline.
func peekSocket(net.Conn) (sockState, bool) { return sockIdle, false }
