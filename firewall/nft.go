package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// Defaults for NFTOptions.
const (
	DefaultTable = "smtpban"
	// DefaultPriority puts smtpban's input chain just ahead of the usual
	// filter chains (iptables-nft and most hand-written tables use 0,
	// firewalld +10), so banned packets are dropped before any of them can
	// accept or log them, yet after conntrack (-200) and mangle (-150).
	// A drop in any base chain is final, so the order only spares work.
	DefaultPriority = -10
)

// DefaultPorts are the SMTP ports: smtp, submissions, submission.
func DefaultPorts() []uint16 { return []uint16{25, 465, 587} }

// DovecotPorts are the ports to add when a Dovecot jail is on: pop3,
// imap, imaps, pop3s, sieve.
func DovecotPorts() []uint16 { return []uint16{110, 143, 993, 995, 4190} }

// NFTOptions configure the nftables backend. Zero fields take defaults.
type NFTOptions struct {
	Table    string   // table name in family inet; default "smtpban"
	Ports    []uint16 // TCP ports to close to banned sources; default DefaultPorts
	AllPorts bool     // drop everything from banned sources, ignoring Ports
	Reject   bool     // answer TCP with a reset instead of dropping silently
	Priority int      // input hook priority; 0 means DefaultPriority
	Limits   Limits
	Logger   *slog.Logger // nil discards
	NetNS    int          // fd of the network namespace to work in; 0 = current
}

func (o NFTOptions) withDefaults() (NFTOptions, error) {
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if len(o.Table) > 255 {
		return o, fmt.Errorf("table name %.20q...: longer than 255 bytes", o.Table)
	}
	if o.AllPorts {
		o.Ports = nil
	} else {
		if len(o.Ports) == 0 {
			o.Ports = DefaultPorts()
		}
		o.Ports = slices.Clone(o.Ports)
		slices.Sort(o.Ports)
		o.Ports = slices.Compact(o.Ports)
		if o.Ports[0] == 0 {
			return o, fmt.Errorf("port 0 cannot be matched")
		}
	}
	if o.Priority == 0 {
		o.Priority = DefaultPriority
	}
	o.Limits = o.Limits.withDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// NFT is the nftables Backend. It owns one table (default inet smtpban)
// holding four timeout sets, a port set and one input chain; elements expire
// in the kernel by themselves. All netlink work is serialized by mu.
type NFT struct {
	opts NFTOptions
	log  *slog.Logger
	lay  *layout

	mu   sync.Mutex // owns conn: one netlink conversation at a time
	conn *nftables.Conn
	fast *netlink.Conn // for addNew; dialed on first use
	// ensured is set after the first Ensure: a table absent then is a
	// first start, not damage to report.
	ensured bool
}

// NFT has every optional ability.
var (
	_ Backend     = (*NFT)(nil)
	_ Checker     = (*NFT)(nil)
	_ Ensurer     = (*NFT)(nil)
	_ Watcher     = (*NFT)(nil)
	_ Uninstaller = (*NFT)(nil)
)

// NewNFT prepares the backend without touching the kernel; call Ensure to
// create the table.
func NewNFT(opts NFTOptions) (*NFT, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("nftables options: %w", err)
	}
	conn, err := nftables.New(nftables.WithNetNSFd(o.NetNS), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		return nil, advise("open nftables netlink", err)
	}
	return &NFT{opts: o, log: o.Logger, lay: newLayout(o), conn: conn}, nil
}

// Options returns the options in effect, defaults filled in.
func (n *NFT) Options() NFTOptions { return n.opts }

// Check validates and normalizes e as Add would.
func (n *NFT) Check(e Entry) (Entry, error) { return n.opts.Limits.Check(e) }

// Close leaves the table and its elements in place: bans keep working and
// expiring while the daemon is down.
func (n *NFT) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropFast()
	return nil
}

// Add inserts entries or resets their timeout to the one given. Prefixes
// the kernel refuses one by one (ErrOverlap) are named in the error; the
// rest goes in.
func (n *NFT) Add(ctx context.Context, entries []Entry) error {
	es, err := n.opts.Limits.checkAll(entries)
	if err != nil {
		return err
	}
	groups := groupsBySet(es)
	n.mu.Lock()
	defer n.mu.Unlock()
	refused, err := n.apply(ctx, &groups, true)
	if err != nil {
		return advise(fmt.Sprintf("add %d elements to table inet %s", len(es), n.opts.Table), err)
	}
	if len(refused) > 0 {
		return fmt.Errorf("add to table inet %s: %d of %d prefixes refused: %w", n.opts.Table, len(refused), len(es), errors.Join(refused...))
	}
	return nil
}

// Remove deletes prefixes; absent ones are not an error.
func (n *NFT) Remove(ctx context.Context, prefixes []netip.Prefix) error {
	es := make([]Entry, len(prefixes))
	for i, p := range prefixes {
		np, err := Normalize(p)
		if err != nil {
			return err
		}
		es[i] = Entry{Prefix: np}
	}
	groups := groupsBySet(es)
	n.mu.Lock()
	defer n.mu.Unlock()
	refused, err := n.apply(ctx, &groups, false)
	if err != nil {
		return advise(fmt.Sprintf("remove %d elements from table inet %s", len(prefixes), n.opts.Table), err)
	}
	if len(refused) > 0 {
		return fmt.Errorf("remove from table inet %s: %d of %d prefixes failed: %w", n.opts.Table, len(refused), len(prefixes), errors.Join(refused...))
	}
	return nil
}

// List reads all four sets with each element's remaining time.
func (n *NFT) List(ctx context.Context) ([]Entry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Entry
	for _, name := range []string{setAddrs4, setAddrs6, setNets4, setNets6} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		els, err := n.conn.GetSetElements(n.lay.sets[name])
		if err != nil {
			return nil, advise(fmt.Sprintf("list set inet %s %s", n.opts.Table, name), err)
		}
		decode := decodeSingles
		if n.lay.sets[name].Interval {
			decode = decodeIntervals
		}
		es, err := decode(els)
		if err != nil {
			return nil, fmt.Errorf("decode set inet %s %s: %w", n.opts.Table, name, err)
		}
		out = append(out, es...)
	}
	sortEntries(out)
	return out, nil
}
