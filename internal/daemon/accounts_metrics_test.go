package daemon

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccountMetricsWiring: a burst through the policy service reaches the
// account and policy metrics: answers by action, the hold, its alert and
// the addresses banned, a malformed request. Without an account block
// the metrics are not there at all.
func TestAccountMetricsWiring(t *testing.T) {
	plain, _, _ := startTest(t)
	if got := metric(t, plain, "smtpban_accounts_held", ""); got != -1 {
		t.Errorf("smtpban_accounts_held without the account watch = %v, want absent", got)
	}

	dir := t.TempDir()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	logPath := filepath.Join(dir, "mail.log")
	writeTestFile(t, logPath, "")
	cfgPath := filepath.Join(dir, "smtpban.hcl")
	policyAddr := free()
	writeTestFile(t, cfgPath, fmt.Sprintf(testConfig, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), free(), logPath)+
		fmt.Sprintf("account \"*\" {\n  messages_per_hour = 2\n}\npolicy {\n  listen = %q\n}\n", policyAddr))
	d, _ := runTest(t, cfgPath, 10*time.Millisecond)

	if got := metric(t, d, "smtpban_accounts_held", ""); got != 0 {
		t.Errorf("accounts held at start = %v, want 0", got)
	}
	if got := metric(t, d, "smtpban_account_alerts_total", "limit=messages_per_hour"); got != 0 {
		t.Errorf("alerts at start = %v, want 0 (initialised)", got)
	}
	c, err := net.Dial("tcp", policyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	ask := func(raw string) string {
		t.Helper()
		if _, err := c.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read answer: %v", err)
			}
			if line == "\n" {
				return b.String()
			}
			b.WriteString(line)
		}
	}
	// Three messages in a minute, two allowed an hour: the third is held.
	for i, want := range []string{"DUNNO", "DUNNO", "HOLD"} {
		got := ask(fmt.Sprintf("request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.%d\ninstance=m%d\nsasl_username=alice\n\n", i+1, i))
		if !strings.HasPrefix(got, "action="+want) {
			t.Errorf("message %d: answer %q, want %s", i+1, got, want)
		}
	}
	for action, want := range map[string]float64{"dunno": 2, "hold": 1, "defer": 0, "reject": 0} {
		if got := metric(t, d, "smtpban_policy_answers_total", "action="+action); got != want {
			t.Errorf("policy answers %s = %v, want %v", action, got, want)
		}
	}
	if got := metric(t, d, "smtpban_accounts_held", ""); got != 1 {
		t.Errorf("accounts held = %v, want 1", got)
	}
	if got := metric(t, d, "smtpban_account_alerts_total", "limit=messages_per_hour"); got != 1 {
		t.Errorf("messages_per_hour alerts = %v, want 1", got)
	}
	eventually(t, "the three addresses banned", func() bool {
		return metric(t, d, "smtpban_account_addresses_banned_total", "") == 3
	})
	if got := ask("no equals sign\n\n"); got != "action=DUNNO\n" {
		t.Errorf("malformed request: answer %q", got)
	}
	if got := metric(t, d, "smtpban_policy_bad_requests_total", "reason=malformed"); got != 1 {
		t.Errorf("malformed requests = %v, want 1", got)
	}
}
