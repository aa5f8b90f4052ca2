package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// Backup is what a daemon offers for `smtpban export`, `smtpban import`
// and the acknowledgement of a recovered state. A Daemon without it
// answers those endpoints 501.
type Backup interface {
	// Export writes every ban, the allow list and the ban history as JSON
	// lines, read consistently (one state transaction).
	Export(ctx context.Context, w io.Writer) error
	// Import merges an export read from r: the later until wins, expired
	// entries are skipped, bad lines are counted and skipped.
	Import(ctx context.Context, r io.Reader) (ImportResponse, error)
	// AckRecovery acknowledges that state was recovered from a damaged
	// database, so that status and the metric stop saying so.
	AckRecovery(ctx context.Context) (AckResponse, error)
}

// StateStatus is the state part of GET /v1/status.
type StateStatus struct {
	// Writable is false while state refuses writes (disk full,
	// read-only): bans still reach the firewall and wait to be saved.
	Writable bool   `json:"writable"`
	Error    string `json:"error,omitempty"`
	Since    string `json:"since,omitempty"` // unwritable since (RFC 3339)
	Pending  int    `json:"pending"`         // bans waiting to be saved
	// Recovered lists salvages of a damaged database not yet
	// acknowledged (`smtpban status -ack-recovery`).
	Recovered []Recovery `json:"recovered,omitempty"`
}

// Recovery is one salvage of a damaged database.
type Recovery struct {
	Time        string         `json:"time"`
	Damaged     string         `json:"damaged"` // where the damaged file was moved
	Reason      string         `json:"reason"`
	Salvaged    map[string]int `json:"salvaged"`
	LostRecords int            `json:"lost_records"`
	Lost        []string       `json:"lost,omitempty"`
}

// ImportResponse answers POST /v1/import.
type ImportResponse struct {
	Bans     int      `json:"bans"`    // written: new, or ending later than the saved one
	Kept     int      `json:"kept"`    // saved ban ends as late or later
	Expired  int      `json:"expired"` // over already, skipped
	Refused  int      `json:"refused"` // protected here, covered, or refused by the firewall
	Allows   int      `json:"allows"`  // allow entries written
	History  int      `json:"history"` // history entries raised
	BadLines []string `json:"bad_lines,omitempty"`
}

// AckResponse answers POST /v1/recovery/ack.
type AckResponse struct {
	Acknowledged int `json:"acknowledged"`
}

// maxImport bounds an import's body: a million bans with their lines.
const maxImport = 1 << 30

// backupRoutes adds the export, import and acknowledgement endpoints.
// Export needs the same rights as a change: it is the whole state.
func (s *Server) backupRoutes(mux *http.ServeMux) {
	b, _ := s.d.(Backup)
	notImpl := func(w http.ResponseWriter) bool {
		if b == nil {
			writeJSON(w, http.StatusNotImplemented, ErrorResponse{"this daemon has no export or import"})
			return true
		}
		return false
	}
	mux.HandleFunc("GET /"+APIVersion+"/export", func(w http.ResponseWriter, r *http.Request) {
		p := peerFrom(r.Context())
		if err := s.authorize(p); err != nil {
			writeJSON(w, statusOf(err), ErrorResponse{err.Error()})
			return
		}
		if notImpl(w) {
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		// Headers go with the first line: an error before it is still a
		// JSON error; after it the stream is cut and the client says so
		// (the body does not end with the trailer line).
		if err := b.Export(r.Context(), w); err != nil {
			s.log.Error("export", keyErr, err)
			return
		}
		_, _ = io.WriteString(w, exportTrailer)
		s.log.Info("control request", keyMethod, r.Method, keyPath, r.URL.Path, keyStatus, http.StatusOK)
	})
	mux.Handle("POST /"+APIVersion+"/import", s.wrapBody(maxImport, func(r *http.Request) (any, error) {
		if b == nil {
			return nil, &httpError{http.StatusNotImplemented, "this daemon has no import"}
		}
		return b.Import(r.Context(), r.Body)
	}))
	mux.Handle("POST /"+APIVersion+"/recovery/ack", s.wrapBody(maxBody, func(r *http.Request) (any, error) {
		if b == nil {
			return nil, &httpError{http.StatusNotImplemented, "this daemon has no recovery to acknowledge"}
		}
		return b.AckRecovery(r.Context())
	}))
}

// exportTrailer ends a complete export, so that a cut stream is noticed.
const exportTrailer = `{"type":"end"}` + "\n"

// wrapBody is wrap for a change whose body may be larger than maxBody.
func (s *Server) wrapBody(limit int64, h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := peerFrom(r.Context())
		var v any
		err := s.authorize(p)
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			v, err = h(r)
		}
		status := http.StatusOK
		if err != nil {
			status = statusOf(err)
			v = ErrorResponse{err.Error()}
		}
		writeJSON(w, status, v)
		attrs := []any{keyMethod, r.Method, keyPath, r.URL.Path, keyStatus, status}
		if err != nil {
			attrs = append(attrs, keyErr, err)
		}
		s.log.Log(r.Context(), slog.LevelInfo, "control request", attrs...)
	})
}

// Export streams the daemon's export to w; it fails if the stream was cut.
func (c *Client) Export(ctx context.Context, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/export", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var nr *notRunningError
		if errors.As(err, &nr) {
			return nr
		}
		return fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.apiError(resp, "GET /export")
	}
	tw := &trailerWriter{w: w}
	if _, err := io.Copy(tw, resp.Body); err != nil {
		return fmt.Errorf("export: read: %w", err)
	}
	if !tw.complete() {
		return errors.New("export: the daemon cut the stream short (see its log); the output is incomplete")
	}
	return nil
}

// trailerWriter passes everything but the trailer line on.
type trailerWriter struct {
	w    io.Writer
	tail []byte // held back: might be the trailer
}

func (t *trailerWriter) Write(p []byte) (int, error) {
	t.tail = append(t.tail, p...)
	if keep := len(exportTrailer); len(t.tail) > keep {
		n := len(t.tail) - keep
		if _, err := t.w.Write(t.tail[:n]); err != nil {
			return 0, err
		}
		t.tail = append(t.tail[:0], t.tail[n:]...)
	}
	return len(p), nil
}

func (t *trailerWriter) complete() bool { return string(t.tail) == exportTrailer }

// Import sends an export to the daemon to merge.
func (c *Client) Import(ctx context.Context, r io.Reader) (ImportResponse, error) {
	var out ImportResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/import", r)
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.hc.Do(req)
	if err != nil {
		var nr *notRunningError
		if errors.As(err, &nr) {
			return out, nr
		}
		return out, fmt.Errorf("import: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out, c.apiError(resp, "POST /import")
	}
	if err := decodeJSON(resp.Body, &out); err != nil {
		return out, fmt.Errorf("import: decode answer: %w", err)
	}
	return out, nil
}

// AckRecovery acknowledges a recovered state.
func (c *Client) AckRecovery(ctx context.Context) (AckResponse, error) {
	var out AckResponse
	err := c.do(ctx, http.MethodPost, "/recovery/ack", nil, struct{}{}, &out)
	return out, err
}

// apiError reads an error answer.
func (c *Client) apiError(resp *http.Response, what string) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	var er ErrorResponse
	if json.Unmarshal(data, &er) != nil || er.Error == "" {
		er.Error = fmt.Sprintf("%s: %s", what, resp.Status)
	}
	return &APIError{Status: resp.StatusCode, Message: er.Error}
}

func decodeJSON(r io.Reader, v any) error {
	return json.NewDecoder(io.LimitReader(r, maxResponse)).Decode(v)
}
