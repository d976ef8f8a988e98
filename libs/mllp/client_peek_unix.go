//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package mllp

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// peekSocket looks at the TCP socket under nc (under the TLS layer too)
// without blocking and without consuming anything: MSG_PEEK|MSG_DONTWAIT
// reports EOF or a reset of a connection the peer closed while it sat in
// the pool. ok is false when nc has no socket to look at.
func peekSocket(nc net.Conn) (st sockState, ok bool) {
	if tc, isTLS := nc.(*tls.Conn); isTLS {
		nc = tc.NetConn()
	}
	sc, isSys := nc.(syscall.Conn)
	if !isSys {
		return sockIdle, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return sockIdle, false
	}
	var buf [1]byte
	var n int
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // one look, never wait for readiness
	}); err != nil {
		return sockClosed, true
	}
	switch {
	case errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK):
		return sockIdle, true
	case rerr != nil:
		return sockClosed, true // ECONNRESET and the like
	case n == 0:
		return sockClosed, true // orderly close by the peer
	}
	return sockData, true
}
