//go:build !linux

package loadgen

import "time"

// haveNanosleep is false where no precise sleep is wired up: arrivals are
// then paced by the Go timer alone, to about a millisecond.
const haveNanosleep = false

func nanosleep(d time.Duration) { time.Sleep(d) }
