package firewall

import (
	"errors"
	"fmt"
	"slices"
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

// batchErrnos are kernel errors about a whole batch (the table, the rights,
// the socket, the set being full) rather than one of its elements.
var batchErrnos = [...]syscall.Errno{
	syscall.ENOENT, syscall.EPERM, syscall.EACCES, syscall.ENOBUFS, syscall.EMSGSIZE,
	syscall.EPROTONOSUPPORT, syscall.EAFNOSUPPORT, syscall.EOPNOTSUPP, syscall.ENOMEM,
	syscall.ENOSPC, syscall.ENFILE, syscall.EBUSY, syscall.EINTR, syscall.EAGAIN,
}

// elementFault reports whether a failed batch may owe its failure to some
// of its elements, so that the rest would go in without them: the kernel
// answered, with an errno other than the batch-wide ones. An element that
// fails first makes later messages fail too (a delete of what was not
// added: ENOENT), so one such errno is enough.
func elementFault(err error) bool {
	errnos := errnosIn(err, nil)
	for _, e := range errnos {
		if !slices.Contains(batchErrnos[:], e) {
			return true
		}
	}
	return false
}

// firstErrno returns the first kernel errno in err, which google/nftables
// reports per message, in batch order: the cause, where later ones may be
// consequences. Without one it returns err.
func firstErrno(err error) error {
	if errnos := errnosIn(err, nil); len(errnos) > 0 {
		return errnos[0]
	}
	return err
}

// errnosIn appends the errnos in err's tree, depth first.
func errnosIn(err error, out []syscall.Errno) []syscall.Errno {
	switch u := err.(type) {
	case syscall.Errno:
		return append(out, u)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = errnosIn(e, out)
		}
	case interface{ Unwrap() error }:
		return errnosIn(u.Unwrap(), out)
	}
	return out
}

// overlap reports whether the kernel refused an interval for overlapping
// another: rbtree sets say ENOTEMPTY, which nf_tables turns into EEXIST.
func overlap(err error) bool {
	return errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY)
}

var errMonitorClosed = errors.New("nftables monitor closed")
