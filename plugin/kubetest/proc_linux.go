package kubetest

import "syscall"

// The children die with the test process even when it cannot run its
// cleanups (a -timeout panic, a kill).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
