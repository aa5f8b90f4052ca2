package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxSocketPath is sun_path's size less the terminating NUL.
const maxSocketPath = 107

// listen creates the socket at path: mode 0600, or 0660 with group gid if
// gid >= 0, owned by the daemon's user. Root connects whatever the mode
// (CAP_DAC_OVERRIDE); other users only through the group. The socket is made in a private directory next to path, given
// its mode and owner there and renamed into place, so nobody can connect
// in between and a stale socket is replaced atomically.
func listen(path string, gid int) (*net.UnixListener, os.FileInfo, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("control socket: create %s: %w", dir, err)
	}
	if err := checkStale(path); err != nil {
		return nil, nil, err
	}
	tmpDir, err := os.MkdirTemp(dir, ".smtpband-")
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > maxSocketPath {
		return nil, nil, fmt.Errorf("control socket: path %s is too long (a socket path has at most %d bytes, and %d are needed for the temporary name %s)", path, maxSocketPath, len(tmp), tmp)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: listen: %w", err)
	}
	// We unlink the socket ourselves: its bound name is the temporary one.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		ln.Close()
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Lchown(tmp, -1, gid); err != nil {
			if errors.Is(err, syscall.EPERM) && os.Geteuid() != 0 {
				// Without CAP_CHOWN a process may only give its files to
				// its own groups.
				err = fmt.Errorf("%w (a daemon not run as root must be a member of gid %d: add the group to the unit's SupplementaryGroups=, and SystemCallFilter=@chown)", err, gid)
			}
			return fail(err)
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(tmp)
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return ln, fi, nil
}

// checkStale makes way at path: nothing there is fine, a socket nobody
// answers on is removed, a live one means another daemon runs.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket: %s exists and is not a socket; not touching it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket: another smtpband is running (it answers at %s)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket: check for a running smtpband at %s: %w", path, err)
	}
	// Nobody listens: left over from a daemon that did not exit cleanly.
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("control socket: remove stale %s: %w", path, err)
	}
	return nil
}
