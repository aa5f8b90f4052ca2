package config

import (
	"net"
	"net/netip"
	"regexp"
	"strconv"

	"github.com/hashicorp/hcl/v2"
)

// groupRE is what useradd(8) accepts as a group name; a numeric gid is
// accepted as well.
var groupRE = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}|[0-9]+)$`)

// group reads a group name or numeric gid; "" is refused, leave the
// attribute out instead. Whether the group exists is checked at start, on
// the host that runs the daemon.
func (l *loader) group(e hcl.Expression, name string) string {
	s, ok := l.nonEmpty(e, name)
	if !ok {
		return ""
	}
	if !groupRE.MatchString(s) {
		l.errorf(e.Range(), "Invalid group", "%s is %q; it must be a group name (lower case letters, digits, _ and -) or a numeric gid", name, s)
		return ""
	}
	return s
}

// listenAddr reads a TCP listen address "host:port" where host is an IP
// address, "localhost" or empty (every interface); "" means off.
func (l *loader) listenAddr(e hcl.Expression, name string) string {
	s, ok := l.str(e, name)
	if !ok || s == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		l.errorf(e.Range(), "Invalid listen address", "%s is %q; it must be host:port, e.g. \"127.0.0.1:9377\"", name, s)
		return ""
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		l.errorf(e.Range(), "Invalid listen address", "%s: port %q must be a number from 1 to 65535", name, port)
		return ""
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			l.errorf(e.Range(), "Invalid listen address", "%s: host %q must be an IP address, localhost, or empty for every interface", name, host)
			return ""
		}
	}
	return s
}
