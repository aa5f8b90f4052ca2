package control

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peer is who is on the other end of a connection, as the kernel saw it
// at connect time.
type peer struct {
	pid    int32
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups; nil if the kernel would not say
}

type peerKey struct{}

// connContext stores the connection's peer credentials in its context;
// the handlers read them with peerFrom.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	p, err := peerOf(uc)
	if err != nil {
		// No credentials: reads still work, changes are refused.
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, p)
}

func peerFrom(ctx context.Context) *peer {
	p, _ := ctx.Value(peerKey{}).(*peer)
	return p
}

func peerOf(c *net.UnixConn) (*peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	var p *peer
	var serr error
	err = rc.Control(func(fd uintptr) {
		var uc *unix.Ucred
		uc, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr != nil {
			return
		}
		p = &peer{pid: uc.Pid, uid: uc.Uid, gid: uc.Gid}
		// SO_PEERGROUPS (Linux 4.13) is race-free and works where /proc
		// hides other users' processes (ProtectProc=invisible).
		p.groups, _ = peerGroups(int(fd))
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	return p, nil
}

// peerGroups reads SO_PEERGROUPS; x/sys has no helper that keeps the
// binary gid array intact.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]byte, 64*4)
	for range 2 {
		n := uint32(len(buf))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e == unix.ERANGE {
			buf = make([]byte, n)
			continue
		}
		if e != 0 {
			return nil, e
		}
		gs := make([]uint32, 0, n/4)
		for i := 0; i+4 <= int(n); i += 4 {
			gs = append(gs, binary.NativeEndian.Uint32(buf[i:]))
		}
		return gs, nil
	}
	return nil, unix.ERANGE
}

// inGroup reports whether the peer has gid as its primary or a
// supplementary group. Without SO_PEERGROUPS it falls back to
// /proc/PID/status, which is good enough for a process still connected.
func (p *peer) inGroup(gid uint32) bool {
	if p.gid == gid {
		return true
	}
	if p.groups != nil {
		return slices.Contains(p.groups, gid)
	}
	gs, err := procGroups(p.pid)
	return err == nil && slices.Contains(gs, gid)
}

func procGroups(pid int32) ([]uint32, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var gs []uint32
		for _, f := range strings.Fields(rest) {
			g, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parse groups of pid %d: %w", pid, err)
			}
			gs = append(gs, uint32(g))
		}
		return gs, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("no Groups line for pid %d", pid)
}
