package loadgen

import (
	"syscall"
	"time"
)

// haveNanosleep says nanosleep sleeps in the kernel, precise to the
// thread's timer slack (50 µs by default).
const haveNanosleep = true

// nanosleep sleeps for d in a system call: a Go timer would wake up to a
// millisecond late, because the runtime's poller waits in whole
// milliseconds.
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}
