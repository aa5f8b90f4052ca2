package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"smtpban/internal/config"
	"smtpban/internal/control"
	"smtpban/internal/control/controltest"
)

var t0 = time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

func newFake() *controltest.Fake {
	return controltest.NewFake(fixedNow, "postfix-sasl", "dovecot")
}

// raw sends a request over the socket without the Client, to see the
// status and the JSON exactly as a script would.
func raw(t *testing.T, sock, method, path, body string) (int, map[string]any) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	t.Cleanup(hc.CloseIdleConnections)
	req, err := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v: %s", method, path, err, data)
	}
	return resp.StatusCode, m
}

func keys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func assertKeys(t *testing.T, what string, v any, want ...string) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %T, want a JSON object", what, v)
	}
	sort.Strings(want)
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("%s: keys %v, want %v", what, got, want)
	}
}

func ban(p string, jail string) control.Ban {
	return control.Ban{Prefix: netip.MustParsePrefix(p), Jail: jail, Since: t0.Add(-time.Minute), Until: t0.Add(time.Hour), Count: 1, Failures: 5, Origin: "mx1", Line: "auth failed"}
}

var banKeys = []string{"prefix", "jail", "since", "until", "count", "failures", "origin", "line"}

// TestJSONFields pins the field names of every endpoint's answer: scripts
// depend on them.
func TestJSONFields(t *testing.T) {
	f := newFake()
	f.AddBan(ban("203.0.113.7/32", "postfix-sasl"))
	sock := controltest.Serve(t, f, control.ServerOptions{Now: fixedNow})

	code, m := raw(t, sock, "GET", "/v1/status", "")
	if code != 200 {
		t.Fatalf("status: %d %v", code, m)
	}
	assertKeys(t, "status", m, "version", "started", "uptime", "firewall", "jails", "sources")
	assertKeys(t, "status.jails[0]", m["jails"].([]any)[0], "name", "enabled", "failing", "total_failures", "banned", "total_banned")
	assertKeys(t, "status.sources[0]", m["sources"].([]any)[0], "name", "kind", "position", "lag", "read", "skipped")

	code, m = raw(t, sock, "GET", "/v1/status?jail=postfix-sasl", "")
	if code != 200 {
		t.Fatalf("status jail: %d %v", code, m)
	}
	js := m["jails"].([]any)
	if len(js) != 1 {
		t.Fatalf("status jail: %d jails, want 1", len(js))
	}
	assertKeys(t, "status?jail.jails[0]", js[0], "name", "enabled", "failing", "total_failures", "banned", "total_banned", "banned_list")

	code, m = raw(t, sock, "GET", "/v1/bans", "")
	if code != 200 {
		t.Fatalf("bans: %d %v", code, m)
	}
	assertKeys(t, "bans", m, "bans")
	assertKeys(t, "bans[0]", m["bans"].([]any)[0], banKeys...)

	code, m = raw(t, sock, "POST", "/v1/ban", `{"prefix":"198.51.100.0/24","jail":"dovecot","for":"2d"}`)
	if code != 200 {
		t.Fatalf("ban: %d %v", code, m)
	}
	assertKeys(t, "ban", m, "ban")
	b := m["ban"].(map[string]any)
	assertKeys(t, "ban.ban", b, slices.DeleteFunc(slices.Clone(banKeys), func(k string) bool { return k == "line" })...)
	if b["prefix"] != "198.51.100.0/24" || b["until"] != t0.Add(48*time.Hour).Format(time.RFC3339) {
		t.Errorf("ban: %v, want 198.51.100.0/24 until +2d", b)
	}

	code, m = raw(t, sock, "POST", "/v1/unban", `{"prefix":"2001:db8::1"}`)
	if code != 200 {
		t.Fatalf("unban none: %d %v", code, m)
	}
	assertKeys(t, "unban", m, "lifted")
	if l, ok := m["lifted"].([]any); !ok || len(l) != 0 {
		t.Errorf("unban none: lifted %#v, want []", m["lifted"])
	}

	code, m = raw(t, sock, "POST", "/v1/allow", `{"prefix":"203.0.113.7","for":"1h"}`)
	if code != 200 {
		t.Fatalf("allow: %d %v", code, m)
	}
	assertKeys(t, "allow", m, "allow", "lifted")
	assertKeys(t, "allow.allow", m["allow"], "prefix", "until")
	if n := len(m["lifted"].([]any)); n != 1 {
		t.Errorf("allow lifted %d bans, want 1", n)
	}

	code, m = raw(t, sock, "POST", "/v1/allow", `{"prefix":"192.0.2.1"}`)
	if code != 200 {
		t.Fatalf("allow forever: %d %v", code, m)
	}
	assertKeys(t, "allow forever.allow", m["allow"], "prefix") // until omitted: permanent

	code, m = raw(t, sock, "GET", "/v1/allow", "")
	if code != 200 {
		t.Fatalf("allow list: %d %v", code, m)
	}
	assertKeys(t, "allow list", m, "allow")
	if n := len(m["allow"].([]any)); n != 2 {
		t.Errorf("allow list has %d entries, want 2", n)
	}

	code, m = raw(t, sock, "DELETE", "/v1/allow?prefix=203.0.113.7", "")
	if code != 200 || m["removed"] != true {
		t.Fatalf("allow delete: %d %v", code, m)
	}
	assertKeys(t, "allow delete", m, "prefix", "removed")
	code, m = raw(t, sock, "POST", "/v1/allow/remove", `{"prefix":"203.0.113.7"}`)
	if code != 200 || m["removed"] != false {
		t.Fatalf("allow remove again: %d %v, want removed false", code, m)
	}

	code, m = raw(t, sock, "POST", "/v1/unban", `{"all":true}`)
	if code != 200 {
		t.Fatalf("unban all: %d %v", code, m)
	}
	if n := len(m["lifted"].([]any)); n != 1 {
		t.Errorf("unban all lifted %d, want 1 (the /24)", n)
	}

	code, m = raw(t, sock, "POST", "/v1/reload", "")
	if code != 200 {
		t.Fatalf("reload: %d %v", code, m)
	}
	assertKeys(t, "reload", m, "reloaded")
}

// TestBadInput: malformed requests get 400 (or 404/405) with a message
// and never reach the daemon.
func TestBadInput(t *testing.T) {
	f := newFake()
	sock := controltest.Serve(t, f, control.ServerOptions{Now: fixedNow})
	tests := []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"ban not an address", "POST", "/v1/ban", `{"prefix":"not-an-ip"}`, 400, `"not-an-ip" is not an IP address`},
		{"ban host bits", "POST", "/v1/ban", `{"prefix":"203.0.113.7/24"}`, 400, "did you mean 203.0.113.0/24?"},
		{"ban zone", "POST", "/v1/ban", `{"prefix":"fe80::1%eth0"}`, 400, "has a zone"},
		{"ban empty", "POST", "/v1/ban", `{"prefix":""}`, 400, "missing address"},
		{"ban bad duration", "POST", "/v1/ban", `{"prefix":"192.0.2.1","for":"soon"}`, 400, "invalid duration"},
		{"ban negative duration", "POST", "/v1/ban", `{"prefix":"192.0.2.1","for":"-1h"}`, 400, "negative"},
		{"ban unknown field", "POST", "/v1/ban", `{"prefix":"192.0.2.1","duration":"1h"}`, 400, `unknown field "duration"`},
		{"ban not json", "POST", "/v1/ban", `prefix=192.0.2.1`, 400, "bad request body"},
		{"ban no body", "POST", "/v1/ban", ``, 400, "empty request body"},
		{"unban bad", "POST", "/v1/unban", `{"prefix":"300.1.1.1"}`, 400, "not an IP address"},
		{"unban nothing", "POST", "/v1/unban", `{}`, 400, "missing address"},
		{"unban both", "POST", "/v1/unban", `{"prefix":"192.0.2.1","all":true}`, 400, "not both"},
		{"allow bad", "POST", "/v1/allow", `{"prefix":"::g"}`, 400, "not an IP address"},
		{"allow delete bad", "DELETE", "/v1/allow?prefix=x", ``, 400, "not an IP address"},
		{"allow remove bad", "POST", "/v1/allow/remove", `{"prefix":"1.2.3"}`, 400, "not an IP address"},
		{"wrong method", "GET", "/v1/ban", ``, 405, "method not allowed"},
		{"no endpoint", "GET", "/v2/status", ``, 404, "no such endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, m := raw(t, sock, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Errorf("status %d, want %d (%v)", code, tc.code, m)
			}
			assertKeys(t, "error answer", m, "error")
			if msg, _ := m["error"].(string); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q, want it to contain %q", msg, tc.msg)
			}
		})
	}
	if c := f.Calls(); len(c) != 0 {
		t.Errorf("bad requests reached the daemon: %v", c)
	}
}

// TestClient runs every Client method against the fake: the Client is the
// API's other half and must round-trip every field.
func TestClient(t *testing.T) {
	f := newFake()
	f.AddBan(ban("203.0.113.7/32", "postfix-sasl"))
	sock := controltest.Serve(t, f, control.ServerOptions{Now: fixedNow})
	c := control.NewClient(sock)
	ctx := t.Context()

	st, err := c.Status(ctx, "postfix-sasl")
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "test" || len(st.Jails) != 1 || !slices.Equal(st.Jails[0].BannedList, []string{"203.0.113.7"}) {
		t.Errorf("status: %+v", st)
	}
	if _, err := c.Status(ctx, "nope"); !errors.Is(err, control.ErrNotFound) || !strings.Contains(err.Error(), `no jail named "nope"`) {
		t.Errorf("status of unknown jail: %v, want ErrNotFound", err)
	}
	bs, err := c.Bans(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := ban("203.0.113.7/32", "postfix-sasl"); len(bs) != 1 || bs[0] != want {
		t.Errorf("bans: %+v, want [%+v]", bs, want)
	}
	b, err := c.Ban(ctx, netip.MustParsePrefix("2001:db8::/64"), "", 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if b.Jail != "manual" || !b.Until.Equal(t0.Add(90*time.Minute)) {
		t.Errorf("ban: %+v", b)
	}
	lifted, err := c.Unban(ctx, netip.MustParsePrefix("2001:db8::5/128"), "", false)
	if err != nil || len(lifted) != 1 || lifted[0].Prefix.String() != "2001:db8::/64" {
		t.Errorf("unban address in banned prefix: %v %v", lifted, err)
	}
	ar, err := c.AllowEntry(ctx, netip.MustParsePrefix("203.0.113.7/32"), 2*time.Hour)
	if err != nil || len(ar.Lifted) != 1 || !ar.Allow.Until.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("allow: %+v %v", ar, err)
	}
	al, err := c.AllowList(ctx)
	if err != nil || len(al) != 1 || !al[0].Until.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("allow list: %+v %v", al, err)
	}
	for i, want := range []bool{true, false} {
		ok, err := c.AllowRemove(ctx, netip.MustParsePrefix("203.0.113.7/32"))
		if err != nil || ok != want {
			t.Errorf("allow remove #%d: %v %v, want %v", i, ok, err, want)
		}
	}
	if err := c.Reload(ctx); err != nil {
		t.Errorf("reload: %v", err)
	}
	f.ReloadErr = config.Diagnostics{{Summary: "Invalid regex", Detail: "missing )"}}
	err = c.Reload(ctx)
	var ae *control.APIError
	if !errors.As(err, &ae) || ae.Status != 422 || !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), "Invalid regex: missing )") {
		t.Errorf("reload with a bad config: %v, want 422 with the diagnostics", err)
	}
	want := []string{"Status", "Status", "Bans", "Ban", "Unban", "Allow", "Unban", "AllowList", "AllowRemove", "AllowRemove", "Reload", "Reload"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, want string }{
		{"no socket", filepath.Join(dir, "none.sock"), "smtpband is not running (no socket at " + filepath.Join(dir, "none.sock") + ")"},
		{"stale socket", stale, "smtpband is not running (nothing answers at " + stale + ")"},
		{"not a socket", file, "smtpband is not running (" + file + " is not a socket)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := control.NewClient(tc.path).Status(t.Context(), "")
			if !errors.Is(err, control.ErrNotRunning) {
				t.Fatalf("err %v, want ErrNotRunning", err)
			}
			if err.Error() != tc.want {
				t.Errorf("message %q, want %q", err.Error(), tc.want)
			}
		})
	}
}

func TestSocket(t *testing.T) {
	dir := t.TempDir()
	t.Run("stale socket replaced", func(t *testing.T) {
		p := filepath.Join(dir, "a.sock")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
		controltest.Serve(t, newFake(), control.ServerOptions{Path: p})
		if _, err := control.NewClient(p).Status(t.Context(), ""); err != nil {
			t.Errorf("status after replacing a stale socket: %v", err)
		}
	})
	t.Run("live daemon kept", func(t *testing.T) {
		p := filepath.Join(dir, "b.sock")
		controltest.Serve(t, newFake(), control.ServerOptions{Path: p})
		err := control.NewServer(newFake(), control.ServerOptions{Path: p}).Listen()
		if err == nil || !strings.Contains(err.Error(), "another smtpband is running") {
			t.Errorf("second server: %v, want another smtpband is running", err)
		}
		if _, err := control.NewClient(p).Status(t.Context(), ""); err != nil {
			t.Errorf("first server no longer answers: %v", err)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		p := filepath.Join(dir, "c.sock")
		if err := os.WriteFile(p, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := control.NewServer(newFake(), control.ServerOptions{Path: p}).Listen()
		if err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("listen over a file: %v, want is not a socket", err)
		}
		if b, _ := os.ReadFile(p); string(b) != "keep me" {
			t.Errorf("the file was touched: %q", b)
		}
	})
	t.Run("parent created, mode 0600, removed on exit", func(t *testing.T) {
		p := filepath.Join(dir, "run", "d.sock")
		srv := control.NewServer(newFake(), control.ServerOptions{Path: p})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		if err := srv.Listen(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- srv.Serve(ctx) }()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket mode %v, want socket 0600", fi.Mode())
		}
		if di, err := os.Stat(filepath.Dir(p)); err != nil || di.Mode().Perm() != 0o755 {
			t.Errorf("parent dir: %v %v, want 0755", di.Mode(), err)
		}
		entries, _ := os.ReadDir(filepath.Dir(p))
		if len(entries) != 1 {
			t.Errorf("run dir holds %d entries, want just the socket", len(entries))
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind after shutdown: %v", err)
		}
	})
	t.Run("group mode 0660", func(t *testing.T) {
		requireRoot(t)
		gid := requireGroup(t, "adm")
		p := filepath.Join(dir, "e.sock")
		controltest.Serve(t, newFake(), control.ServerOptions{Path: p, Group: "adm"})
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o660 || st.Gid != gid || st.Uid != 0 {
			t.Errorf("socket %v uid %d gid %d, want 0660 0:%d", fi.Mode(), st.Uid, st.Gid, gid)
		}
	})
	t.Run("unknown group", func(t *testing.T) {
		err := control.NewServer(newFake(), control.ServerOptions{Path: filepath.Join(dir, "f.sock"), Group: "no-such-group-smtpban"}).Listen()
		if err == nil || !strings.Contains(err.Error(), "no-such-group-smtpban") {
			t.Errorf("unknown group: %v", err)
		}
	})
}
