package app

import (
	"context"
	"fmt"
	"time"

	systemd "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// notifier speaks systemd's notify protocol (Type=notify): READY=1 once the scheduler
// runs, WATCHDOG=1 while it keeps running, STOPPING=1 at shutdown. Without NOTIFY_SOCKET
// every call is a no-op.
type notifier struct {
	log *zap.Logger
}

func newNotifier(log *zap.Logger) *notifier { return &notifier{log: log.Named("systemd")} }

func (n *notifier) send(state string) {
	if _, err := systemd.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notify failed", zap.String("state", state), zap.Error(err))
	}
}

func (n *notifier) ready() { n.send(systemd.SdNotifyReady) }

// reloading says a reload began (systemd's notify-reload protocol: RELOADING=1 with the
// monotonic time); ready() says it ended.
func (n *notifier) reloading() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		n.send(systemd.SdNotifyReloading)
		return
	}
	n.send(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", systemd.SdNotifyReloading, ts.Nano()/1000))
}
func (n *notifier) stopping() { n.send(systemd.SdNotifyStopping) }

// watchdog pings at half of WATCHDOG_USEC while alive() holds, until ctx is done. A
// scheduler that stopped running stops the pings, and systemd restarts the service.
func (n *notifier) watchdog(ctx context.Context, alive func() bool) {
	interval, err := systemd.SdWatchdogEnabled(false)
	if err != nil {
		// A bad WATCHDOG_USEC is not a reason to stop rotating.
		n.log.Warn("systemd watchdog settings unreadable; running without the watchdog", zap.Error(err))
		interval = 0
	}
	if interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				n.send(systemd.SdNotifyWatchdog)
			}
		}
	}
}
