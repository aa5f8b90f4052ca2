package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// buildBinaries builds smtpband and smtpban as they are in this tree.
func buildBinaries(t *testing.T) (smtpband, smtpban string) {
	t.Helper()
	dir := t.TempDir()
	runOK(t, exec.Command("go", "build", "-o", dir, "smtpban/cmd/smtpband", "smtpban/cmd/smtpban"))
	return filepath.Join(dir, "smtpband"), filepath.Join(dir, "smtpban")
}

// helpText runs a help request; its exit code and stream are the
// commands' own business, the text is what counts here.
func helpText(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	return string(out)
}

var flagLine = regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)

// flagsIn lists the flags flag.PrintDefaults shows in a help text.
func flagsIn(help string) []string {
	var fs []string
	for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
		fs = append(fs, m[1])
	}
	return fs
}

// commandsIn lists the commands of `smtpban help`: "  NAME ARGS" lines.
func commandsIn(help string) []string {
	var cs []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z0-9-]*)\b`).FindAllStringSubmatch(help, -1) {
		cs = append(cs, m[1])
	}
	return cs
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// completionWords returns the words of the completion's line that
// matches re (a case branch or a compgen list).
func completionWords(t *testing.T, completion, re string) []string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(completion)
	if m == nil {
		t.Errorf("bash completion has no line matching %s", re)
		return nil
	}
	return strings.Fields(m[1])
}

// TestManAndCompletionMatchBinaries: every flag smtpband shows in its
// help is documented in smtpband(8) and completed; every smtpban command
// is documented in smtpban(1), with each of its flags in its synopsis, and
// completed with its flags. A new flag or command fails this test until
// the man page and the completion say it.
func TestManAndCompletionMatchBinaries(t *testing.T) {
	t.Parallel()
	smtpband, smtpban := buildBinaries(t)
	man8 := readFile(t, "man/smtpband.8.md")
	man1 := readFile(t, "man/smtpban.1.md")
	completion := readFile(t, "bash-completion/smtpban")
	runOK(t, exec.Command("bash", "-n", "bash-completion/smtpban"))

	daemonFlags := flagsIn(helpText(smtpband, "-h"))
	if len(daemonFlags) < 3 {
		t.Fatalf("smtpband -h shows flags %q: cannot parse its help", daemonFlags)
	}
	daemonWords := completionWords(t, completion, `COMPREPLY=\(\$\(compgen -W '(-config[^']*)' -- "\$cur"\)\)\n\}`)
	for _, f := range daemonFlags {
		if !regexp.MustCompile("(?m)^`-" + regexp.QuoteMeta(f) + "`").MatchString(man8) {
			t.Errorf("smtpband -%s is not an option in packaging/man/smtpband.8.md", f)
		}
		if !slices.Contains(daemonWords, "-"+f) {
			t.Errorf("smtpband -%s is not completed (packaging/bash-completion/smtpban)", f)
		}
	}

	cmds := commandsIn(helpText(smtpban, "help"))
	if len(cmds) < 5 {
		t.Fatalf("smtpban help shows commands %q: cannot parse its help", cmds)
	}
	cmdWords := completionWords(t, completion, `compgen -W '(status[^']*)'`)
	// The global flags, from the usage line: "usage: smtpban [-config
	// FILE] [-socket PATH] COMMAND [ARGS]".
	help := helpText(smtpban, "help")
	usage, _, _ := strings.Cut(help, "\n")
	var globals []string
	for _, m := range regexp.MustCompile(`\[-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(usage, -1) {
		globals = append(globals, m[1])
	}
	if len(globals) == 0 {
		t.Fatalf("no global flags in smtpban's usage line %q", usage)
	}
	for _, c := range cmds {
		if !slices.Contains(cmdWords, c) {
			t.Errorf("smtpban %s is not completed", c)
		}
		term := regexp.MustCompile("(?m)^`" + regexp.QuoteMeta(c) + "`(.*)\n: ").FindStringSubmatch(man1)
		if term == nil {
			t.Errorf("smtpban %s is not a command in packaging/man/smtpban.1.md", c)
			continue
		}
		if c == "help" {
			continue
		}
		flagWords := completionWords(t, completion, `\n\s+`+regexp.QuoteMeta(c)+`\)\s+flags='([^']*)'`)
		for _, f := range flagsIn(helpText(smtpban, c, "-h")) {
			if slices.Contains(globals, f) {
				continue
			}
			if !strings.Contains(term[1], "`-"+f+"`") {
				t.Errorf("smtpban %s -%s is not in its synopsis in packaging/man/smtpban.1.md", c, f)
			}
			if !slices.Contains(flagWords, "-"+f) {
				t.Errorf("smtpban %s -%s is not completed", c, f)
			}
		}
	}
	for _, f := range globals {
		if !regexp.MustCompile("(?m)^`-" + regexp.QuoteMeta(f) + "`").MatchString(man1) {
			t.Errorf("smtpban -%s is not an option in packaging/man/smtpban.1.md", f)
		}
	}
}
