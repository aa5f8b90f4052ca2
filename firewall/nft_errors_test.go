package firewall

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// kernelErr builds an error the way google/nftables' Flush reports one
// message failing after another: each errno in a netlink.OpError, joined.
func kernelErr(errnos ...unix.Errno) error {
	errs := make([]error, len(errnos))
	for i, e := range errnos {
		errs[i] = &netlink.OpError{Op: "receive", Err: e}
	}
	return fmt.Errorf("conn.Receive: %w", errors.Join(errs...))
}

func TestAdvise(t *testing.T) {
	cases := []struct {
		name string
		err  error
		hint string
	}{
		{"overlap", kernelErr(unix.EEXIST), "an overlapping prefix is already banned"},
		// A failed add, delete, add: the delete then misses the element too.
		{"overlap then a missed delete", kernelErr(unix.EEXIST, unix.ENOENT, unix.EEXIST), "an overlapping prefix is already banned"},
		{"set gone", kernelErr(unix.ENOENT), "Ensure recreates it"},
		{"no rights", kernelErr(unix.EPERM), "CAP_NET_ADMIN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := advise("add 1 elements", c.err)
			if !errors.Is(err, c.err) || !strings.HasPrefix(err.Error(), "add 1 elements: ") || !strings.Contains(err.Error(), c.hint) {
				t.Errorf("advise = %q, want it to wrap the error and hint %q", err, c.hint)
			}
		})
	}
}

// TestElementFault: only a failure an element may have caused makes apply
// split a batch; the first errno is the one the prefix is refused with.
func TestElementFault(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		fault bool
		first error
	}{
		{"overlap, then the delete misses it", kernelErr(unix.EEXIST, unix.ENOENT, unix.EEXIST), true, unix.EEXIST},
		{"bad element", kernelErr(unix.EINVAL), true, unix.EINVAL},
		{"set gone", kernelErr(unix.ENOENT, unix.ENOENT), false, unix.ENOENT},
		{"no rights", kernelErr(unix.EPERM), false, unix.EPERM},
		{"not the kernel's", errors.New("SendMessages: broken pipe"), false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := elementFault(c.err); got != c.fault {
				t.Errorf("elementFault = %v, want %v", got, c.fault)
			}
			want := c.first
			if want == nil {
				want = c.err
			}
			if got := firstErrno(c.err); got != want {
				t.Errorf("firstErrno = %v, want %v", got, want)
			}
		})
	}
}
