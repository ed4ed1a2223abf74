//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs postgres as cred (nil: as ourselves). Without a
// parent-death signal here, a killed test binary leaves postgres running
// until the next start finds its directory stale.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
