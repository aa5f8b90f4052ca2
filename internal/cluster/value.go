package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"smtpban/internal/ban"
	"smtpban/state"
)

// Value is what one ban's key holds, as JSON. Until alone decides when
// the ban ends; the key's lease only cleans up after it. Fields a later
// version adds are ignored.
type Value struct {
	Until    time.Time `json:"until"`
	Since    time.Time `json:"since,omitzero"`
	Jail     string    `json:"jail"`
	Origin   string    `json:"origin"`
	Failures int       `json:"failures"`
	Reason   string    `json:"reason,omitempty"`
}

// Bounds on what another host (or anyone who can write the prefix) may
// make us store.
const (
	maxValueBytes  = 8 << 10
	maxReasonBytes = 2 << 10
	maxJailBytes   = 64
)

// Why a value was refused, the label of smtpban_cluster_invalid_total.
const (
	invalidKey    = "key"
	invalidJSON   = "json"
	invalidField  = "field"
	invalidLength = "length"
)

var originRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// invalidError is a value refused, with the metric's reason.
type invalidError struct {
	reason string
	err    error
}

func (e *invalidError) Error() string { return e.reason + ": " + e.err.Error() }

func invalid(reason, format string, args ...any) error {
	return &invalidError{reason: reason, err: fmt.Errorf(format, args...)}
}

// reasonOf is the metric label of a decode error.
func reasonOf(err error) string {
	var ie *invalidError
	if errors.As(err, &ie) {
		return ie.reason
	}
	return "other"
}

// banKey is the key of prefix p under the cluster's key space.
func banKey(keys string, p netip.Prefix) string { return keys + p.String() }

// parseKey returns the prefix a key names. Only the canonical form is
// taken: one ban, one key.
func parseKey(keys, key string) (netip.Prefix, error) {
	s, ok := strings.CutPrefix(key, keys)
	if !ok {
		return netip.Prefix{}, invalid(invalidKey, "key %q is outside %q", key, keys)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, invalid(invalidKey, "key %q: %v", key, err)
	}
	if p != ban.Normalize(p) || p.String() != s {
		return netip.Prefix{}, invalid(invalidKey, "key %q: not in canonical form (%s)", key, ban.Normalize(p))
	}
	return p, nil
}

// decode checks one key and value and returns the remote ban they say.
func decode(keys string, key, value []byte) (ban.Remote, error) {
	p, err := parseKey(keys, string(key))
	if err != nil {
		return ban.Remote{}, err
	}
	if len(value) > maxValueBytes {
		return ban.Remote{}, invalid(invalidLength, "key %s: value of %d bytes, at most %d", key, len(value), maxValueBytes)
	}
	var v Value
	dec := json.NewDecoder(bytes.NewReader(value))
	if err := dec.Decode(&v); err != nil {
		return ban.Remote{}, invalid(invalidJSON, "key %s: %v", key, err)
	}
	if dec.More() {
		return ban.Remote{}, invalid(invalidJSON, "key %s: text after the value", key)
	}
	switch {
	case v.Until.IsZero():
		return ban.Remote{}, invalid(invalidField, "key %s: no until", key)
	case !originRE.MatchString(v.Origin):
		return ban.Remote{}, invalid(invalidField, "key %s: origin %q is not a host name", key, v.Origin)
	case v.Jail == "" || len(v.Jail) > maxJailBytes || !printable(v.Jail):
		return ban.Remote{}, invalid(invalidField, "key %s: jail %q", key, v.Jail)
	case v.Failures < 0:
		return ban.Remote{}, invalid(invalidField, "key %s: failures %d", key, v.Failures)
	case len(v.Reason) > maxReasonBytes || !utf8.ValidString(v.Reason):
		return ban.Remote{}, invalid(invalidField, "key %s: reason of %d bytes or not UTF-8", key, len(v.Reason))
	}
	return ban.Remote{
		Prefix: p, Jail: v.Jail, Origin: v.Origin, Reason: v.Reason,
		Since: v.Since, Until: v.Until, Failures: v.Failures,
	}, nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// valueOf is the value this host publishes for b.
func valueOf(b state.Ban) Value {
	v := Value{Until: b.Until.UTC(), Since: b.Since.UTC(), Jail: b.Jail, Origin: b.Origin, Failures: b.Failures}
	if n := len(b.Lines); n > 0 {
		v.Reason = b.Lines[n-1]
		if len(v.Reason) > maxReasonBytes {
			v.Reason = strings.ToValidUTF8(v.Reason[:maxReasonBytes], "")
		}
	}
	return v
}
