package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"time"
)

// cpu feeds the daemon o.rate lines/s of mixed traffic (lines of a
// generated log, re-stamped with the current time) for o.secs seconds in
// 10 ms batches and reports its utime+stime as a share of one core.
func cpu(ctx context.Context, o options) error {
	if o.mixed == "" {
		return fmt.Errorf("cpu needs -mixed LOG (from bench/gen)")
	}
	src, err := os.Open(o.mixed)
	if err != nil {
		return err
	}
	defer src.Close()
	need := o.rate * o.secs
	lines := make([]string, 0, need)
	sc := bufio.NewScanner(src)
	for len(lines) < need && sc.Scan() {
		// Drop the syslog stamp ("Nov 23 11:46:21 ", 16 bytes); it is redone at write time.
		if l := sc.Text(); len(l) > 16 {
			lines = append(lines, l[16:])
		}
	}
	if len(lines) < need {
		return fmt.Errorf("%s has %d lines, need %d", o.mixed, len(lines), need)
	}
	e, err := runningEnv(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	time.Sleep(time.Second)
	f, err := os.OpenFile(e.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const tick = 10 * time.Millisecond
	per := o.rate / int(time.Second/tick)
	c0, err := procCPU(e.pid())
	if err != nil {
		return err
	}
	start := time.Now()
	next := start
	buf := make([]byte, 0, 64<<10)
	for i := 0; i < need; i += per {
		now := time.Now()
		stamp := now.Format(time.Stamp) + " "
		buf = buf[:0]
		for _, l := range lines[i:min(i+per, need)] {
			buf = append(buf, stamp...)
			buf = append(buf, l...)
			buf = append(buf, '\n')
		}
		if _, err := f.Write(buf); err != nil {
			return err
		}
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	if err := e.waitRead(ctx, need, 30*time.Second); err != nil {
		return err
	}
	wall := time.Since(start)
	c1, err := procCPU(e.pid())
	if err != nil {
		return err
	}
	used := time.Duration(c1-c0) * (time.Second / 100) // CLK_TCK is 100 on Linux
	share := 100 * used.Seconds() / wall.Seconds()
	fmt.Printf("smtpband at %d lines/s of mixed traffic for %s (%d lines): utime+stime %s = %.2f%% of one core\n", o.rate, wall.Round(time.Millisecond), need, used, share)
	fmt.Printf("RESULT cpu_percent=%.2f\n", share)
	return nil
}
