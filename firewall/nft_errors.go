package firewall

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// advise wraps a kernel error with what was being done and, where the cause
// is common, what to do about it. google/nftables flattens some errnos into
// text, so the message is matched as well.
func advise(op string, err error) error {
	if err == nil {
		return nil
	}
	has := func(errno syscall.Errno) bool {
		return errors.Is(err, errno) || strings.Contains(err.Error(), errno.Error())
	}
	var hint string
	switch {
	case has(syscall.EPERM), has(syscall.EACCES):
		hint = "need CAP_NET_ADMIN: run smtpband as root or give it the capability (the unit's AmbientCapabilities=CAP_NET_ADMIN)"
	case has(syscall.EPROTONOSUPPORT), has(syscall.EAFNOSUPPORT), has(syscall.EOPNOTSUPP):
		hint = "nf_tables not available: load the module (modprobe nf_tables) or use a kernel with nftables"
	// Before ENOENT: a failed add, delete, add also reports the delete
	// missing the element the add could not insert.
	case has(syscall.EEXIST), has(syscall.ENOTEMPTY):
		hint = "an overlapping prefix is already banned"
	case has(syscall.ENOENT):
		hint = "table, chain or set missing (removed by someone else?): Ensure recreates it"
	case has(syscall.ENOBUFS), has(syscall.EMSGSIZE):
		hint = "netlink buffer too small for the batch"
	case has(syscall.EBUSY):
		hint = "object in use by a rule outside smtpban's table"
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w (%s)", op, err, hint)
}

var errMonitorClosed = errors.New("nftables monitor closed")
