//go:build unix

package gateway

import "syscall"

// peekQuiet peeks at the socket without blocking: quiet (nothing to read,
// not closed) means the connection is usable. Control, not Read: Read
// refuses at once while the last request's read deadline has passed, which
// would condemn every connection idle longer than that.
func peekQuiet(raw syscall.RawConn) bool {
	quiet := false
	var buf [1]byte
	err := raw.Control(func(fd uintptr) {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		quiet = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK // else EOF, data or an error
	})
	return err == nil && quiet
}
