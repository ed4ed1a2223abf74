package redistest

import (
	"os/exec"
	"syscall"
)

// setParentDeath has the kernel kill redis-server if the test binary dies
// without stopping it, so a killed `go test` leaves no server running.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
