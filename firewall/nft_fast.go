package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// addNew is the fast path of Add for single-address sets: one batch that
// adds the elements with NLM_F_EXCL, so it fails as a whole with EEXIST if
// any of them is already in the set (a refresh, which needs the slower
// add, delete, add of apply). A batch holding a delete costs the kernel
// about 13 ms to commit, a plain add well under one: new bans, the common
// case, take this path. google/nftables has no exclusive element add, so
// the message is built here and sent on a socket of our own.
// It reports whether the elements went in; on a refusal from the kernel
// the caller takes the slow path.
func (n *NFT) addNew(set *nftables.Set, els []nftables.SetElement) (bool, error) {
	if n.fast == nil {
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: n.opts.NetNS})
		if err != nil {
			return false, fmt.Errorf("open nftables netlink: %w", err)
		}
		n.fast = c
	}
	msg := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
		},
		Data: append(nfgen(uint8(set.Table.Family), 0), encodeElems(set, els)...),
	}
	batch := []netlink.Message{
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request}, Data: nfgen(0, unix.NFNL_SUBSYS_NFTABLES)},
		msg,
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request}, Data: nfgen(0, unix.NFNL_SUBSYS_NFTABLES)},
	}
	if _, err := n.fast.SendMessages(batch); err != nil {
		n.dropFast()
		return false, fmt.Errorf("send set elements: %w", err)
	}
	// One answer: the ack of the add, or its error.
	_, err := n.fast.Receive()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	}
	var oe *netlink.OpError
	if errors.As(err, &oe) {
		// Some other refusal: the slow path finds the element at fault,
		// or fails the same way if it is the batch's.
		return false, nil
	}
	// Not the kernel's answer: the socket's state is unknown.
	n.dropFast()
	return false, err
}

func (n *NFT) dropFast() {
	if n.fast != nil {
		n.fast.Close()
		n.fast = nil
	}
}

// nfgen is the nfgenmsg header every nfnetlink message starts with.
func nfgen(family uint8, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}

// encodeElems encodes a set-element list as google/nftables does for a
// plain timeout set: table, set, and each element's key and timeout.
func encodeElems(set *nftables.Set, els []nftables.SetElement) []byte {
	list := netlink.NewAttributeEncoder()
	for _, el := range els {
		list.Nested(unix.NFTA_LIST_ELEM, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.NFTA_SET_ELEM_KEY, func(k *netlink.AttributeEncoder) error {
				k.Bytes(unix.NFTA_DATA_VALUE, el.Key)
				return nil
			})
			if set.HasTimeout && el.Timeout != 0 {
				ae.Bytes(unix.NFTA_SET_ELEM_TIMEOUT, binary.BigEndian.AppendUint64(nil, uint64(el.Timeout.Milliseconds())))
			}
			return nil
		})
	}
	elems, _ := list.Encode() // cannot fail: only byte attributes
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, set.Table.Name)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set.Name)
	ae.Bytes(unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED, elems)
	b, _ := ae.Encode()
	return b
}
