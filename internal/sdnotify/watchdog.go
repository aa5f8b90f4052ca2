package sdnotify

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// WatchdogInterval is how often systemd wants WATCHDOG=1 (WatchdogSec=,
// passed as $WATCHDOG_USEC), or 0 when no watchdog is set for this
// process: the variables are absent, or $WATCHDOG_PID names another
// process (a child that inherited them). sd_watchdog_enabled(3) checks the
// same.
func WatchdogInterval() (time.Duration, error) {
	s := os.Getenv("WATCHDOG_USEC")
	if s == "" {
		return 0, nil
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("sd_notify: WATCHDOG_PID %q: %w", p, err)
		}
		if pid != os.Getpid() {
			return 0, nil
		}
	}
	us, err := strconv.ParseUint(s, 10, 63)
	if err != nil || us == 0 {
		return 0, fmt.Errorf("sd_notify: WATCHDOG_USEC %q: want a positive number of microseconds", s)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// Reloading is the message that starts a reload: RELOADING=1 with
// MONOTONIC_USEC, which systemd 253's Type=notify-reload requires (it
// matches the message to the reload it asked for) and older systemd, such
// as Debian 12's 252 with Type=notify, ignores. READY=1 ends the reload.
func Reloading() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1"
	}
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}
