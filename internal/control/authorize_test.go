package control

import (
	"net/http"
	"testing"
)

// TestAuthorize covers who may make changes, for a daemon run as root and
// as a system user (uid 998 here), without needing either: TestCredentials
// and TestCredentialsDaemonNotRoot check the same over a real socket.
func TestAuthorize(t *testing.T) {
	const daemonUID, adm = 998, 4
	tests := []struct {
		name  string
		uid   uint32 // the daemon's
		group bool   // socket_group = "adm"
		peer  *peer
		err   string // "" = allowed
	}{
		{"daemon root: root", 0, false, &peer{uid: 0}, ""},
		{"daemon root: other", 0, false, &peer{uid: 1000, gid: 1000, groups: []uint32{}}, "permission denied: run as root"},
		{"daemon root: group member", 0, true, &peer{uid: 1000, gid: 1000, groups: []uint32{adm}}, ""},
		{"daemon root: not in group", 0, true, &peer{uid: 1000, gid: 1000, groups: []uint32{}}, "permission denied: run as root or as a member of group adm"},
		{"daemon not root: root", daemonUID, false, &peer{uid: 0}, ""},
		{"daemon not root: its own uid", daemonUID, false, &peer{uid: daemonUID, gid: daemonUID, groups: []uint32{}}, ""},
		{"daemon not root: other", daemonUID, false, &peer{uid: 1000, gid: 1000, groups: []uint32{}}, "permission denied: run as root or as user smtpban"},
		{"daemon not root: other with the daemon's gid", daemonUID, false, &peer{uid: 1000, gid: daemonUID, groups: []uint32{daemonUID}}, "permission denied: run as root or as user smtpban"},
		{"daemon not root: group member", daemonUID, true, &peer{uid: 1000, gid: 1000, groups: []uint32{adm}}, ""},
		{"daemon not root: not in group", daemonUID, true, &peer{uid: 1000, gid: 1000, groups: []uint32{}}, "permission denied: run as root, as user smtpban or as a member of group adm"},
		{"daemon not root: unknown peer", daemonUID, false, nil, "permission denied: run as root or as user smtpban (the caller's credentials are unknown)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{uid: tc.uid, user: "smtpban"}
			if tc.group {
				s.opts.Group, s.gid, s.grp = "adm", adm, true
			}
			err := s.authorize(tc.peer)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Errorf("error %v, want %q", err, tc.err)
			case tc.err != "" && statusOf(err) != http.StatusForbidden:
				t.Errorf("status %d, want 403", statusOf(err))
			}
		})
	}
}
