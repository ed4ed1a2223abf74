//go:build !linux

package redistest

import "os/exec"

// setParentDeath does nothing here: without a parent-death signal a killed
// test binary leaves its redis-server running until the machine restarts.
func setParentDeath(*exec.Cmd) {}
