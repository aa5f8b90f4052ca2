package config

import (
	"os"
	"strings"
	"testing"
)

// TestConfigsReadmeHCL loads every ```hcl block of configs/README.md (the
// jail documentation) as a main file; a fragment may read the shipped
// "mail" source, so an unknown source is the one error tolerated.
func TestConfigsReadmeHCL(t *testing.T) {
	f, err := os.Open("../../configs/README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks, start, err := hclBlocks(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 {
		t.Fatal("configs/README.md has no hcl block")
	}
	for i, b := range blocks {
		main := writeConfig(t, map[string]string{"smtpban.hcl": b})
		_, ds := Load(main)
		for _, d := range ds {
			if d.Summary == "Unknown source" || d.Summary == "Include matches nothing" {
				continue
			}
			t.Errorf("configs/README.md block starting at line %d: %s", start[i], strings.ReplaceAll(d.String(), main, "block"))
		}
	}
}
