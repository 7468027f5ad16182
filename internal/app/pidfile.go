package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PIDFile, in state_dir, names the `rotatord run` that uses the directory. The daemon holds
// an exclusive flock on it while it runs, so `rotatord reload` signals a PID only when that
// PID is the running daemon of the config it checked, never another process that happens
// to have the number (a stale file is not locked).
const PIDFile = "daemon.pid"

// holdPIDFile writes this process's PID to state_dir/daemon.pid and locks it until release.
// A file another process holds locked means another daemon uses the directory: that is an
// error naming it.
func holdPIDFile(stateDir string) (release func(), err error) {
	name := filepath.Join(stateDir, PIDFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("pid file %s is not a regular file", name)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		return nil, fmt.Errorf("another rotatord run (pid %s) uses state_dir %s", strings.TrimSpace(string(b[:n])), stateDir)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pid file: %w", err)
	}
	return func() {
		_ = os.Remove(name)
		f.Close()
	}, nil
}

// CheckDaemonPID returns nil when pid is the `rotatord run` holding stateDir's PID file,
// else an error saying what runs there instead.
func CheckDaemonPID(stateDir string, pid int) error {
	name := filepath.Join(stateDir, PIDFile)
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no rotatord run holds state_dir %s (no %s there)", stateDir, PIDFile)
	}
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("pid file %s is not a regular file", name)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return fmt.Errorf("no rotatord run holds state_dir %s (its %s is left from one that stopped)", stateDir, PIDFile)
	}
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	holder := strings.TrimSpace(string(b[:n]))
	if holder != strconv.Itoa(pid) {
		return fmt.Errorf("PID %d is not the rotatord run that holds state_dir %s (that is PID %s)", pid, stateDir, holder)
	}
	return nil
}
