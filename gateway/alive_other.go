//go:build !unix

package gateway

import "syscall"

// peekQuiet cannot peek without blocking here; a stale connection then
// fails on use, and only requests that may run twice are sent again.
func peekQuiet(syscall.RawConn) bool { return true }
