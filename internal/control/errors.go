package control

import (
	"errors"
	"net/http"
)

// Sentinels callers branch on. The server maps a Daemon error wrapping
// ErrInvalid to 400 and ErrNotFound to 404 (anything else is 500); the
// client's errors wrap the sentinel matching the answer's status.
var (
	// ErrNotRunning: nothing listens on the socket.
	ErrNotRunning = errors.New("smtpband is not running")
	// ErrPermission: the caller may not connect or may not change things.
	ErrPermission = errors.New("permission denied")
	// ErrInvalid: the request was malformed or refused as given.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such jail (or endpoint).
	ErrNotFound = errors.New("not found")
)

// APIError is a non-2xx answer: the status and the server's message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Unwrap lets errors.Is match the sentinel for the status.
func (e *APIError) Unwrap() error {
	switch e.Status {
	case http.StatusForbidden:
		return ErrPermission
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ErrInvalid
	case http.StatusNotFound:
		return ErrNotFound
	}
	return nil
}

// notRunningError is a dial failure, with a message a person understands.
type notRunningError struct {
	msg string
	err error // ErrNotRunning or ErrPermission
}

func (e *notRunningError) Error() string { return e.msg }
func (e *notRunningError) Unwrap() error { return e.err }
