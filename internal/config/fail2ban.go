package config

import (
	"regexp"
	"strings"
)

// fail2banTag matches fail2ban's filter syntax pasted into a pattern:
// %(name)s interpolations, <F-USER>-style capture tags and the
// __prefix_line helper. smtpban's patterns are plain Go regexps with
// <HOST>: such text is matched literally and never occurs in a log line.
var fail2banTag = regexp.MustCompile(`%\([^()\s]+\)s|</?F-[A-Z][-A-Z0-9]*>|__prefix_line|<ADDR>|<IP4>|<IP6>|<HOST6>|<SKIPLINES>`)

// fail2banSyntax returns the fail2ban syntax s holds, with what to write
// instead, or "" if it holds none.
func fail2banSyntax(s string) string {
	m := fail2banTag.FindString(s)
	switch {
	case m == "":
		return ""
	case strings.HasPrefix(m, "%(") || m == "__prefix_line":
		return m + " is fail2ban's interpolation; smtpban matches the message after the program (programs = [...]), so drop the prefix and start the pattern at the message"
	case strings.HasPrefix(m, "<F-USER>") || strings.HasPrefix(m, "</F-USER>") || strings.HasPrefix(m, "<F-ALT_USER"):
		return m + " is fail2ban's capture tag; write (?P<user>...) instead"
	case strings.HasPrefix(m, "<F-") || strings.HasPrefix(m, "</F-"):
		return m + " is fail2ban's capture tag; use a named group (?P<user>...), (?P<count>...) or (?P<pass>...)"
	default:
		return m + " is fail2ban's address tag; smtpban's is <HOST> (IPv4 and IPv6)"
	}
}
