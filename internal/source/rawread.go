package source

import (
	"math/bits"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reads that the page cache can serve are made as raw syscalls, outside the
// runtime's syscall state. Entering that state wakes the runtime's monitor
// thread (sysmon) from its deep sleep, and it then polls every 20 µs until
// the process is idle again: at a steady trickle of writes, one wake-up per
// write cost more CPU than reading and matching the lines. A raw syscall
// must never block, hence RWF_NOWAIT: data not in the page cache yet, or a
// kernel or file system without it, takes the ordinary blocking read.

// preadAt reads at off: once, returning a short count at the end of the
// file (unlike os.File.ReadAt, which then reads again to find io.EOF).
func preadAt(fd int, b []byte, off int64) (int, error) {
	got := 0
	// A cached read stops short at the end of the file or of what is
	// cached: the read after it tells which.
	for got < len(b) {
		n, ok := preadCached(fd, b[got:], off+int64(got))
		if !ok {
			break
		}
		if n == 0 {
			return got, nil
		}
		got += n
	}
	if got == len(b) {
		return got, nil
	}
	for {
		n, err := syscall.Pread(fd, b[got:], off+int64(got))
		if err != syscall.EINTR {
			return got + max(n, 0), err
		}
	}
}

// preadCached is preadv2(RWF_NOWAIT) as a raw syscall; ok is false when it
// could not say (not cached, not supported, interrupted).
func preadCached(fd int, b []byte, off int64) (n int, ok bool) {
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	// The offset's high half is a separate argument on 32-bit systems.
	lo, hi := uintptr(off), uintptr(uint64(off)>>32>>(bits.UintSize-32))
	r, _, errno := unix.RawSyscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, lo, hi, unix.RWF_NOWAIT)
	if errno != 0 {
		return 0, false
	}
	return int(r), true
}
