package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"smtpban/internal/logline"
)

// ReadJournal reads, once and without following, the entries of the
// journal cfg describes that journald received at or after since, and
// passes each line an entry from a trusted sender holds to fn, in order:
// `smtpban replay -journal`. Entries skipped (untrusted sender, too long,
// undecodable) are counted, never passed on; an error of fn stops it.
func ReadJournal(ctx context.Context, cfg JournalConfig, since time.Time, fn func(logline.Line) error) (skipped int, err error) {
	args := []string{"--merge", "--output=json", "--all", "--no-pager", "--quiet", "--since=@" + strconv.FormatInt(since.Unix(), 10)}
	if cfg.Directory != "" {
		d, err := filepath.Abs(cfg.Directory)
		if err != nil {
			return 0, fmt.Errorf("journal directory %s: %w", cfg.Directory, err)
		}
		args = append(args, "--directory="+d)
	}
	for _, f := range cfg.Files {
		a, err := filepath.Abs(f)
		if err != nil {
			return 0, fmt.Errorf("journal file %s: %w", f, err)
		}
		args = append(args, "--file="+a)
	}
	args = append(append(args, "--"), cfg.Match...)
	command := cfg.Command
	if command == "" {
		command = "journalctl"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, command, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("journalctl stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start journalctl: %w", err)
	}
	t := parseTrust(cfg.Trust)
	br := bufio.NewReaderSize(out, 64<<10)
	var readErr error
	for {
		b, err := readEntry(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errTooLarge) {
			skipped++
			continue
		}
		if err != nil {
			readErr = fmt.Errorf("read journalctl output: %w", err)
			break
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		e, err := parseEntry(b, t)
		if err != nil {
			skipped++
			continue
		}
		switch e.Skip {
		case "":
		case "empty":
			continue
		default:
			skipped++
			continue
		}
		e.Line.Read = e.Time
		if err := fn(e.Line); err != nil {
			readErr = err
			break
		}
	}
	if readErr != nil {
		cancel()
		cmd.Wait()
		return skipped, readErr
	}
	if err := cmd.Wait(); err != nil {
		return skipped, fmt.Errorf("journalctl: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return skipped, nil
}

var errTooLarge = errors.New("journal entry too large")

// readEntry returns the next line of journalctl's output; one longer
// than maxEntryBytes is consumed and reported as errTooLarge.
func readEntry(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(chunk) > maxEntryBytes {
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				return nil, errTooLarge
			}
			long = append(long, chunk...)
			continue
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(chunk)+len(long) > 0) {
			return nil, err
		}
		return append(long, chunk...), nil
	}
}
