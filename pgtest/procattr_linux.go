package pgtest

import "syscall"

// procAttr runs postgres as cred (nil: as ourselves) and has the kernel send
// it SIGQUIT (immediate shutdown) if the test binary dies without stopping
// it, so a killed `go test` leaves no server running.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
