package cli

import "syscall"

// limitCoreDumps keeps secrets held in memory out of core files and away from ptrace by
// other processes of the same user: RLIMIT_CORE 0 and PR_SET_DUMPABLE 0.
func limitCoreDumps() {
	_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
	const prSetDumpable = 4
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0)
}
