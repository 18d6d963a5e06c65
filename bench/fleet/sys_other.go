//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

// Elsewhere than on Linux the fleet runs without process groups, a
// parent-death signal or the kernel's figures: the children still end when
// their stdin closes, and are killed one by one.

func childAttr() *syscall.SysProcAttr { return nil }

func killGroup(cmd *exec.Cmd, _ syscall.Signal) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}

func openFiles() int                       { return -1 }
func noFileLimit() (soft, hard uint64)     { return 0, 0 }
func osLimits() map[string]string          { return nil }
func readNetCounters() map[string]int64    { return nil }
func socketStates(port int) map[string]int { return nil }
