package control

import (
	"fmt"
	"net/netip"
	"strings"
)

// The request and response bodies of the /v1/ endpoints. Field names are
// part of the API: add fields, never rename them.

// BanRequest is the body of POST /v1/ban.
type BanRequest struct {
	Prefix string `json:"prefix"`
	Jail   string `json:"jail,omitempty"`
	// For is a duration such as "1h" or "2d"; "" or "0" means the jail's bantime.
	For string `json:"for,omitempty"`
}

// BanResponse answers POST /v1/ban.
type BanResponse struct {
	Ban Ban `json:"ban"`
}

// UnbanRequest is the body of POST /v1/unban: a prefix, or all.
type UnbanRequest struct {
	Prefix string `json:"prefix,omitempty"`
	Jail   string `json:"jail,omitempty"`
	All    bool   `json:"all,omitempty"`
	// Local lifts the bans on this host only, not in the shared ban list.
	Local bool `json:"local,omitempty"`
}

// UnbanResponse answers POST /v1/unban with the bans lifted (maybe none).
type UnbanResponse struct {
	Lifted []Ban `json:"lifted"`
}

// AllowRequest is the body of POST /v1/allow.
type AllowRequest struct {
	Prefix string `json:"prefix"`
	For    string `json:"for,omitempty"` // "" or "0": until removed
}

// AllowResponse answers POST /v1/allow: the entry made and the bans lifted.
type AllowResponse struct {
	Allow  Allow `json:"allow"`
	Lifted []Ban `json:"lifted"`
}

// AllowListResponse answers GET /v1/allow.
type AllowListResponse struct {
	Allow []Allow `json:"allow"`
}

// AllowRemoveRequest is the body of POST /v1/allow/remove; DELETE
// /v1/allow?prefix=P does the same.
type AllowRemoveRequest struct {
	Prefix string `json:"prefix"`
}

// AllowRemoveResponse says whether the prefix was on the list.
type AllowRemoveResponse struct {
	Prefix  netip.Prefix `json:"prefix"`
	Removed bool         `json:"removed"`
}

// BansResponse answers GET /v1/bans.
type BansResponse struct {
	Bans []Ban `json:"bans"`
}

// ReloadResponse answers POST /v1/reload.
type ReloadResponse struct {
	Reloaded bool `json:"reloaded"`
}

// ErrorResponse is the body of every answer that is not 2xx.
type ErrorResponse struct {
	Error string `json:"error"`
}

// ParsePrefix parses an address ("203.0.113.7", "2001:db8::1") as a
// single-address prefix, or a CIDR prefix ("203.0.113.0/24"). IPv4-mapped
// IPv6 is unmapped. A prefix with host bits set is refused rather than
// masked: banning 203.0.113.7/24 is more likely a typo than a wish.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("missing address or prefix")
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q has a zone; give the address without %%%s", s, a.Zone())
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", s, m)
	}
	return p, nil
}

// FormatPrefix shows a single-address prefix as the bare address.
func FormatPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
