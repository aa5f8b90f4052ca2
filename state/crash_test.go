package state

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const helperEnv = "SMTPBAN_STATE_HELPER_DB"

// TestHelperProcess is the child of TestKill9: it stores bans one by one,
// printing "ok N" after PutBan N returned, checkpointing as it goes, until
// it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestKill9")
	}
	s, err := Open(path, Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		if _, err := s.PutBan(ban(helperAddr(i).String(), time.Duration(i)*time.Second, time.Hour)); err != nil {
			fmt.Println("put:", err)
			os.Exit(2)
		}
		fmt.Println("ok", i)
		if i%10 == 0 {
			err := s.Checkpoint(Checkpoint{
				Positions: map[string][]byte{"mail.log": []byte(strconv.Itoa(i))},
				Windows:   testWindows(500),
			})
			if err != nil {
				fmt.Println("checkpoint:", err)
				os.Exit(2)
			}
		}
	}
}

func helperAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})
}

// TestKill9 proves PutBan is durable when it returns: a child process is
// SIGKILLed while storing bans, and every ban it reported is found after
// reopening. (SIGKILL keeps the page cache; power loss is what the fsync in
// every commit is for, and no test here pulls the plug.)
func TestKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smtpban.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// Kill it mid-stream, after some bans but while it is still writing.
	const killAfter = 25
	last := -1
	sc := bufio.NewScanner(out)
	for last < killAfter && sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "ok ")
		if !ok {
			t.Fatalf("child: %s", sc.Text())
		}
		if last, err = strconv.Atoi(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if last < killAfter {
		t.Fatalf("child stopped after ban %d: %v", last, sc.Err())
	}

	s := mustOpenPath(t, path)
	for i := 0; i <= last; i++ {
		b, ok, err := s.Ban(netip.PrefixFrom(helperAddr(i), 32))
		if err != nil || !ok {
			t.Errorf("ban %d reported stored but missing after kill -9: %v, %v", i, ok, err)
			continue
		}
		if b.Count != 1 || !b.Since.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Errorf("ban %d came back as %+v", i, b)
		}
	}
	// The checkpoint read back is whole: position and windows together.
	pos, err := s.Positions()
	if err != nil {
		t.Fatal(err)
	}
	ws, err := s.Windows()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := strconv.Atoi(string(pos["mail.log"])); p > last || len(ws) != 500 {
		t.Errorf("checkpoint after kill: position %q, %d windows", pos["mail.log"], len(ws))
	}
	t.Logf("killed after ban %d; all %d found", last, last+1)
}
