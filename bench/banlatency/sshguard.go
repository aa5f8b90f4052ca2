package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const sshgLibexec = "/usr/libexec/sshguard"

// sshgAttackScore is what sshg-blocker adds per attack (its default
// dangerousness): it blocks once the sum reaches the threshold (-a).
const sshgAttackScore = 10

// sshguard runs the pipeline /usr/sbin/sshguard would run, without it:
// the wrapper only reads /etc/sshguard/sshguard.conf, which is the
// host's. Same stages, same flags: sshg-logtail FILE | sshg-parser |
// sshg-blocker -a THRESHOLD | BACKEND. The backend is a bash loop that
// reads the block commands as the sshg-fw-* scripts do and records
// "<addr> $EPOCHREALTIME" (a builtin: no process started per block).
func sshguard(ctx context.Context, o options) error {
	logPath := filepath.Join(o.dir, "mail.log")
	records := filepath.Join(o.dir, "blocks.txt")
	backend := filepath.Join(o.dir, "sshg-fw-record")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		return fmt.Errorf("creating the log: %w", err)
	}
	script := fmt.Sprintf(`#!/bin/bash
# Records each block command's time; the rest of sshg-fw-*'s protocol is ignored.
while read -r cmd address addrtype cidr; do
	case $cmd in
	block) printf '%%s %%s\n' "$address" "$EPOCHREALTIME" >>%q ;;
	esac
done
`, records)
	what := "backend reads 'block'"
	if o.firewall {
		var err error
		if script, err = nftSetsBackend(records); err != nil {
			return err
		}
		what = "sshg-fw-nft-sets' nft add element returned"
	}
	if err := os.WriteFile(backend, []byte(script), 0o755); err != nil {
		return fmt.Errorf("writing the backend: %w", err)
	}
	threshold := o.attacks * sshgAttackScore
	pipeline := fmt.Sprintf("%s/sshg-logtail %q | %s/sshg-parser | %s/sshg-blocker -a %d -p 3600 -s 3600 | %q",
		sshgLibexec, logPath, sshgLibexec, sshgLibexec, threshold, backend)
	cmd := exec.Command("/bin/sh", "-c", pipeline)
	var ns string
	if o.firewall {
		ns = fmt.Sprintf("banlatency-%d", os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns add %s: %w: %s", ns, err, out)
		}
		defer func() { _ = exec.Command("ip", "netns", "delete", ns).Run() }()
		cmd = exec.Command("ip", "netns", "exec", ns, "/bin/sh", "-c", pipeline)
	}
	stop, outPath, err := startGroup(cmd, o.dir, "sshguard")
	if err != nil {
		return err
	}
	defer stop()
	// tail -F -n 0 starts at the end of the file: let it open it first.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	trials, err := drive(ctx, o, logPath, records)
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, outPath)
	}
	if o.firewall {
		if err := checkNftSet(ns, trials); err != nil {
			return err
		}
	}
	s := summarize(latencies(trials))
	fmt.Printf("sshguard %s pipeline: %s\n", sshgVersion(), pipeline)
	if o.firewall {
		fmt.Printf("backend: /usr/libexec/sshguard/sshg-fw-nft-sets run by bash, in network namespace %s, recording $EPOCHREALTIME after each nft add element\n", ns)
	}
	fmt.Printf("threshold %d = %d attacks of %d; %d bans (+1 warm-up not counted), random idle in [0, %s) before each, %s pause before the tipping line; work files in %s\n",
		threshold, o.attacks, sshgAttackScore, len(trials), o.idle, o.pause, o.dir)
	fmt.Printf("  append -> %s:  %s\n", what, s)
	fmt.Println(s.row(fmt.Sprintf("sshguard (tail -F, parser, blocker), %d attacks: %s", o.attacks, what), len(trials)))
	return nil
}

// nftSetsBackend is sshguard's own sshg-fw-nft-sets, run by bash, with
// its block step followed by a record of $EPOCHREALTIME: the time nft
// returned, the element being in the kernel set.
func nftSetsBackend(records string) (string, error) {
	b, err := os.ReadFile(sshgLibexec + "/sshg-fw-nft-sets")
	if err != nil {
		return "", fmt.Errorf("reading sshguard's nft backend: %w", err)
	}
	s := string(b)
	const block = "    run_nft \"add element\" \"${NFT_SET} { $1/$3 }\" $2\n"
	if !strings.HasPrefix(s, "#!/bin/sh\n") || strings.Count(s, block) != 1 {
		return "", fmt.Errorf("%s/sshg-fw-nft-sets is not the 2.4 script this tool patches", sshgLibexec)
	}
	s = strings.Replace(s, "#!/bin/sh\n", "#!/bin/bash\n", 1)
	s = strings.Replace(s, block, block+fmt.Sprintf("    printf '%%s %%s\\n' \"$1\" \"$EPOCHREALTIME\" >>%q\n", records), 1)
	return s, nil
}

var benchAddrRE = regexp.MustCompile(`198\.1[89]\.\d+\.\d+`)

// checkNftSet makes sure every banned address is in sshguard's set.
func checkNftSet(ns string, ts []trial) error {
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "set", "ip", "sshguard", "attackers").CombinedOutput()
	if err != nil {
		return fmt.Errorf("listing sshguard's set: %w: %s", err, out)
	}
	in := map[string]bool{}
	for _, a := range benchAddrRE.FindAllString(string(out), -1) {
		in[a] = true
	}
	for _, t := range ts {
		if !in[t.addr.String()] {
			return fmt.Errorf("%s was recorded as blocked but is not in sshguard's set", t.addr)
		}
	}
	return nil
}

func sshgVersion() string {
	b, err := os.ReadFile("/usr/sbin/sshguard")
	if err != nil {
		return "(version unknown)"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "version="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "(version unknown)"
}
