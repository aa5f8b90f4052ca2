// Package sdnotify tells systemd about the daemon's state (sd_notify(3))
// in pure Go: one datagram to $NOTIFY_SOCKET.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Notify sends state (e.g. "READY=1", "RELOADING=1", "STOPPING=1") to the
// socket in $NOTIFY_SOCKET. It returns false, nil when the variable is
// unset: not started by systemd, or by a unit that is not Type=notify.
func Notify(state string) (bool, error) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return false, nil
	}
	if err := Send(sock, state); err != nil {
		return false, err
	}
	return true, nil
}

// Send sends state to the datagram socket at path. A path starting with
// '@' names an abstract socket.
func Send(path, state string) error {
	if path == "" || (path[0] != '/' && path[0] != '@') {
		// systemd also allows vsock: addresses; smtpband runs on the host.
		return fmt.Errorf("sd_notify: unsupported NOTIFY_SOCKET %q", path)
	}
	// Go's net package maps a leading '@' to the abstract namespace.
	addr := &net.UnixAddr{Name: path, Net: "unixgram"}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", path, err)
	}
	return nil
}
