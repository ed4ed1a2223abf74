//go:build unix

package gateway

import (
	"net"
	"syscall"
)

// alive reports whether an idle keep-alive connection is still usable: the
// backend has neither closed it nor sent anything unasked. One non-blocking
// peek, no deadline juggling. A connection whose last header deadline has
// passed reads as not alive (the peek is refused) and is replaced: only
// after a long idle, and only for requests that may not run twice.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		quiet = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK // else EOF, data or an error
		return true
	})
	return err == nil && quiet
}
