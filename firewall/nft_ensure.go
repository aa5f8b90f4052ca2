package firewall

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// Ensure creates smtpban's table, or repairs it when it is missing pieces or
// they have the wrong shape (someone ran `nft flush ruleset`, or the options
// changed). Element sets of the right shape keep their elements; everything
// happens in one netlink batch. Calling it again changes nothing.
func (n *NFT) Ensure(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	fix, err := n.survey()
	if err != nil {
		return advise(fmt.Sprintf("inspect table inet %s", n.opts.Table), err)
	}
	first := !n.ensured
	n.ensured = true
	if fix.none() {
		return nil
	}
	l := n.lay
	c := n.conn
	c.AddTable(l.table) // no-op if it exists
	if fix.chainExists && fix.rebuildChain {
		c.FlushChain(l.chain)
		c.DelChain(l.chain)
	}
	for _, s := range fix.delSets {
		c.DelSet(s)
	}
	for _, s := range fix.addSets {
		var els []nftables.SetElement
		if s == l.ports {
			els = portElements(n.opts.Ports)
		}
		if err := c.AddSet(s, els); err != nil {
			return fmt.Errorf("encode set %s: %w", s.Name, err)
		}
	}
	if fix.rebuildChain {
		c.AddChain(l.chain)
		for _, r := range l.rules {
			c.AddRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return advise(fmt.Sprintf("build table inet %s", n.opts.Table), err)
	}
	if first && slices.Equal(fix.reasons, []string{"table absent"}) {
		n.log.Info("nftables table created", "table", n.opts.Table)
		return nil
	}
	n.log.Warn("nftables table repaired", "table", n.opts.Table, "reason", strings.Join(fix.reasons, "; "))
	return nil
}

// repair lists what Ensure must change.
type repair struct {
	chainExists  bool
	rebuildChain bool
	delSets      []*nftables.Set
	addSets      []*nftables.Set
	reasons      []string
}

func (r *repair) none() bool { return !r.rebuildChain && len(r.delSets)+len(r.addSets) == 0 }

// survey compares the kernel's table with the layout.
func (n *NFT) survey() (*repair, error) {
	l := n.lay
	r := &repair{}
	tables, err := n.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == l.table.Name }) {
		r.reasons = append(r.reasons, "table absent")
		r.rebuildChain = true
		for _, name := range []string{setAddrs4, setAddrs6, setNets4, setNets6} {
			r.addSets = append(r.addSets, l.sets[name])
		}
		if l.ports != nil {
			r.addSets = append(r.addSets, l.ports)
		}
		return r, nil
	}

	sets, err := n.conn.GetSets(l.table)
	if err != nil {
		return nil, err
	}
	have := map[string]*nftables.Set{}
	for _, s := range sets {
		have[s.Name] = s
	}
	want := []*nftables.Set{l.sets[setAddrs4], l.sets[setAddrs6], l.sets[setNets4], l.sets[setNets6]}
	if l.ports != nil {
		want = append(want, l.ports)
	}
	for _, w := range want {
		got, ok := have[w.Name]
		switch {
		case !ok:
			r.reasons = append(r.reasons, "set "+w.Name+" absent")
		case !sameSet(got, w):
			r.reasons = append(r.reasons, "set "+w.Name+" has another shape")
			r.delSets = append(r.delSets, got)
		case w == l.ports:
			els, err := n.conn.GetSetElements(got)
			if err != nil {
				return nil, err
			}
			if !samePorts(els, n.opts.Ports) {
				r.reasons = append(r.reasons, "port set differs")
				r.delSets = append(r.delSets, got)
			} else {
				continue
			}
		default:
			continue
		}
		r.addSets = append(r.addSets, w)
	}
	if p, ok := have[setPorts]; ok && l.ports == nil {
		r.reasons = append(r.reasons, "port set not wanted")
		r.delSets = append(r.delSets, p)
	}
	// Rules refer to the sets, so any set change rebuilds the chain too.
	r.rebuildChain = len(r.delSets)+len(r.addSets) > 0

	chains, err := n.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(chains, func(c *nftables.Chain) bool {
		return c.Table != nil && c.Table.Name == l.table.Name && c.Name == chainName
	})
	if i < 0 {
		r.reasons = append(r.reasons, "chain absent")
		r.rebuildChain = true
		return r, nil
	}
	r.chainExists = true
	if !sameChain(chains[i], l.chain) {
		r.reasons = append(r.reasons, "chain has another hook, priority or policy")
		r.rebuildChain = true
		return r, nil
	}
	rules, err := n.conn.GetRules(l.table, l.chain)
	if err != nil {
		return nil, err
	}
	if !sameRules(rules, l.rules) {
		r.reasons = append(r.reasons, "rules differ")
		r.rebuildChain = true
	}
	return r, nil
}

func samePorts(els []nftables.SetElement, ports []uint16) bool {
	got := make([]uint16, 0, len(els))
	for _, el := range els {
		if len(el.Key) != 2 {
			return false
		}
		got = append(got, uint16(el.Key[0])<<8|uint16(el.Key[1]))
	}
	slices.Sort(got)
	return slices.Equal(got, ports)
}

// sameRules compares by the fingerprint each rule carries in its user data.
func sameRules(got, want []*nftables.Rule) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if string(got[i].UserData) != string(want[i].UserData) {
			return false
		}
	}
	return true
}

// Uninstall deletes smtpban's table and every ban in it.
func (n *NFT) Uninstall(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	tables, err := n.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return advise("list tables", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == n.lay.table.Name }) {
		return nil
	}
	n.conn.DelTable(n.lay.table)
	if err := n.conn.Flush(); err != nil {
		return advise(fmt.Sprintf("delete table inet %s", n.opts.Table), err)
	}
	n.log.Info("nftables table removed", "table", n.opts.Table)
	return nil
}
