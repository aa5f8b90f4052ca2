package firewall

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// chainName is smtpban's one base chain.
const chainName = "input"

// Set IDs are fixed per batch instead of taken from the library's global
// counter, which is not safe for concurrent use.
const (
	idAddrs4 = iota + 1
	idAddrs6
	idNets4
	idNets6
	idPorts
)

// layout is the table smtpban wants, derived from the options.
type layout struct {
	table *nftables.Table
	sets  map[string]*nftables.Set // element sets by name
	ports *nftables.Set            // nil with AllPorts
	chain *nftables.Chain
	rules []*nftables.Rule
}

func newLayout(o NFTOptions) *layout {
	t := &nftables.Table{Name: o.Table, Family: nftables.TableFamilyINet}
	mk := func(name string, id uint32, key nftables.SetDatatype, interval bool) *nftables.Set {
		return &nftables.Set{Table: t, Name: name, ID: id, KeyType: key, HasTimeout: true, Interval: interval}
	}
	l := &layout{
		table: t,
		sets: map[string]*nftables.Set{
			setAddrs4: mk(setAddrs4, idAddrs4, nftables.TypeIPAddr, false),
			setAddrs6: mk(setAddrs6, idAddrs6, nftables.TypeIP6Addr, false),
			setNets4:  mk(setNets4, idNets4, nftables.TypeIPAddr, true),
			setNets6:  mk(setNets6, idNets6, nftables.TypeIP6Addr, true),
		},
	}
	if !o.AllPorts {
		l.ports = &nftables.Set{Table: t, Name: setPorts, ID: idPorts, KeyType: nftables.TypeInetService, Constant: true}
	}
	accept := nftables.ChainPolicyAccept
	l.chain = &nftables.Chain{
		Name:     chainName,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(nftables.ChainPriority(o.Priority)),
		Policy:   &accept,
	}
	for _, src := range []struct {
		set    string
		proto  byte
		offset uint32
		len    uint32
	}{
		{setAddrs4, unix.NFPROTO_IPV4, 12, 4},
		{setNets4, unix.NFPROTO_IPV4, 12, 4},
		{setAddrs6, unix.NFPROTO_IPV6, 8, 16},
		{setNets6, unix.NFPROTO_IPV6, 8, 16},
	} {
		s := l.sets[src.set]
		match := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{src.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: src.offset, Len: src.len},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		}
		tcp := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		}
		// No conntrack state match on purpose: every packet of an already
		// open session is dropped too, so a banned client cannot keep
		// guessing over a connection it opened before the ban.
		var bodies [][]expr.Any
		switch {
		case !o.AllPorts:
			ports := append(slices.Clone(tcp),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, SetName: l.ports.Name, SetID: l.ports.ID},
			)
			bodies = append(bodies, append(ports, verdict(o.Reject)...))
		case o.Reject:
			// A TCP reset only exists for TCP; everything else is dropped.
			bodies = append(bodies, append(slices.Clone(tcp), verdict(true)...), verdict(false))
		default:
			bodies = append(bodies, verdict(false))
		}
		for i, body := range bodies {
			exprs := append(slices.Clone(match), body...)
			l.rules = append(l.rules, &nftables.Rule{
				Table:    t,
				Chain:    l.chain,
				Exprs:    exprs,
				UserData: []byte(fingerprint(o, src.set, i)),
			})
		}
	}
	return l
}

func verdict(reject bool) []expr.Any {
	if reject {
		return []expr.Any{&expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
	}
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
}

// fingerprint is stored in each rule's user data so Ensure can tell
// whether the rules in the kernel are the ones these options produce
// without decoding expressions.
func fingerprint(o NFTOptions, set string, i int) string {
	ports := make([]string, len(o.Ports))
	for j, p := range o.Ports {
		ports[j] = fmt.Sprint(p)
	}
	return fmt.Sprintf("smtpban/v1 set=%s rule=%d allports=%t reject=%t ports=%s",
		set, i, o.AllPorts, o.Reject, strings.Join(ports, ","))
}

func portElements(ports []uint16) []nftables.SetElement {
	els := make([]nftables.SetElement, len(ports))
	for i, p := range ports {
		els[i] = nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)}
	}
	return els
}

// sameSet reports whether a set read from the kernel has the wanted shape.
func sameSet(got, want *nftables.Set) bool {
	return got.KeyType.Name == want.KeyType.Name && got.Interval == want.Interval &&
		got.HasTimeout == want.HasTimeout && got.Constant == want.Constant &&
		!got.IsMap && !got.Anonymous && got.Timeout == 0
}

func sameChain(got, want *nftables.Chain) bool {
	return got.Type == want.Type &&
		got.Hooknum != nil && *got.Hooknum == *want.Hooknum &&
		got.Priority != nil && *got.Priority == *want.Priority &&
		got.Policy != nil && *got.Policy == *want.Policy
}
