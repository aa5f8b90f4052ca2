package daemon

import (
	"context"
	"fmt"
	"io"
	"time"

	"smtpban/internal/control"
	"smtpban/internal/metrics"
	"smtpban/state"
)

// The control API's export, import and recovery acknowledgement, and the
// state part of status and of the metrics.
var _ control.Backup = (*Daemon)(nil)

// Export writes state as JSON lines, in one read transaction.
func (d *Daemon) Export(ctx context.Context, w io.Writer) error {
	n, err := d.store.Export(w, d.now())
	if err != nil {
		return err
	}
	d.log.Info("state exported", "records", n)
	return nil
}

// Import merges an export through the ban manager.
func (d *Daemon) Import(ctx context.Context, r io.Reader) (control.ImportResponse, error) {
	m, bad, err := state.ReadExport(r)
	if err != nil {
		return control.ImportResponse{}, fmt.Errorf("%w: %w", control.ErrInvalid, err)
	}
	res, err := d.bans.Import(ctx, m)
	if err != nil {
		return control.ImportResponse{}, err
	}
	out := control.ImportResponse{
		Bans: len(res.Bans), Kept: res.Kept, Expired: res.Expired, Refused: res.Refused,
		Allows: res.Allows, History: res.History,
	}
	for i, b := range bad {
		if i == 20 {
			out.BadLines = append(out.BadLines, fmt.Sprintf("... and %d more", len(bad)-i))
			break
		}
		out.BadLines = append(out.BadLines, b.Error())
	}
	if len(bad) > 0 {
		d.log.Warn("import: lines skipped", "bad_lines", len(bad), "first", bad[0].Error())
	}
	return out, nil
}

// AckRecovery forgets the recoveries once the admin has seen them.
func (d *Daemon) AckRecovery(ctx context.Context) (control.AckResponse, error) {
	n, err := d.store.AckRecovery()
	if err != nil {
		return control.AckResponse{}, err
	}
	if n > 0 {
		d.log.Info("state recovery acknowledged", "recoveries", n)
	}
	return control.AckResponse{Acknowledged: n}, nil
}

// stateStatus is the state part of status.
func (d *Daemon) stateStatus() *control.StateStatus {
	h := d.bans.StateHealth()
	st := &control.StateStatus{Writable: h.Writable, Error: h.Err, Pending: h.Pending}
	if !h.Writable {
		st.Since = h.Since.UTC().Format(time.RFC3339)
	}
	rs, err := d.store.Recoveries()
	if err != nil {
		d.log.Warn("read recoveries", keyErr, err)
	}
	for _, r := range rs {
		st.Recovered = append(st.Recovered, control.Recovery{
			Time: r.Time.UTC().Format(time.RFC3339), Damaged: r.Damaged, Reason: r.Reason,
			Salvaged: r.Salvaged, LostRecords: r.LostRecords, Lost: r.Lost,
		})
	}
	return st
}

// stateHealth feeds the state metrics at each scrape.
func (d *Daemon) stateHealth() metrics.StateHealth {
	h := d.bans.StateHealth()
	rs, _ := d.store.Recoveries()
	return metrics.StateHealth{Writable: h.Writable, Recovered: len(rs)}
}
