package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// setConn is a raw nfnetlink socket into the namespace, for the burst
// polls: google/nftables decodes every element of a dump into a struct
// (about 1.1 s for 100k, see restart), and has no single-element get.
type setConn struct {
	c *netlink.Conn
}

func (e *env) setConn() (*setConn, error) {
	f, err := os.Open("/run/netns/" + e.ns)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	// A dump of thousands of elements spans many messages.
	_ = c.SetReadBuffer(4 << 20)
	return &setConn{c: c}, nil
}

func (s *setConn) Close() error { return s.c.Close() }

// elemMsg is a GETSETELEM request on smtpban's table (inet) for set,
// asking for key, or a dump of the whole set if key is nil.
func elemMsg(set string, key []byte) netlink.Message {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, "smtpban")
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
	flags := netlink.Request | netlink.Dump
	if key != nil {
		// No ack asked: the answer is the element or an error, one
		// message either way (an ack after the element would be left
		// in the socket for the next request to trip on).
		flags = netlink.Request
		ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(l *netlink.AttributeEncoder) error {
			l.Nested(unix.NFTA_LIST_ELEM, func(el *netlink.AttributeEncoder) error {
				el.Nested(unix.NFTA_SET_ELEM_KEY, func(k *netlink.AttributeEncoder) error {
					k.Bytes(unix.NFTA_DATA_VALUE, key)
					return nil
				})
				return nil
			})
			return nil
		})
	}
	b, _ := ae.Encode() // cannot fail: only byte attributes
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM), Flags: flags},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, b...),
	}
}

// has says whether key is in set: one request, one answer (the element,
// or ENOENT).
func (s *setConn) has(set string, key []byte) (bool, error) {
	_, err := s.c.Execute(elemMsg(set, key))
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, err
}

func isNotFound(err error) bool {
	var oe *netlink.OpError
	return errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOENT)
}

// keys dumps set and calls f with each element's key (valid only during
// the call).
func (s *setConn) keys(set string, f func(key []byte)) error {
	msgs, err := s.c.Execute(elemMsg(set, nil))
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return err
		}
		for ad.Next() {
			if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				continue
			}
			ad.Nested(func(l *netlink.AttributeDecoder) error {
				for l.Next() {
					l.Nested(func(el *netlink.AttributeDecoder) error {
						for el.Next() {
							if el.Type() == unix.NFTA_SET_ELEM_KEY {
								el.Nested(func(k *netlink.AttributeDecoder) error {
									for k.Next() {
										if k.Type() == unix.NFTA_DATA_VALUE {
											f(k.Bytes())
										}
									}
									return nil
								})
							}
						}
						return nil
					})
				}
				return nil
			})
		}
		if err := ad.Err(); err != nil {
			return err
		}
	}
	return nil
}
