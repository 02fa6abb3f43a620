package testrig

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// LogRecord is one record a RecordingHandler kept, attrs flattened.
type LogRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]any
}

// RecordingHandler keeps every record and hands those whose message is
// watched to a channel as well.
type RecordingHandler struct {
	mu      sync.Mutex
	records []LogRecord
	attrs   []slog.Attr
	Notify  chan LogRecord
	parent  *RecordingHandler
}

func NewRecorder() *RecordingHandler {
	return &RecordingHandler{Notify: make(chan LogRecord, 1024)}
}

func (h *RecordingHandler) root() *RecordingHandler {
	if h.parent != nil {
		return h.parent
	}
	return h
}

func (h *RecordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *RecordingHandler) Handle(_ context.Context, r slog.Record) error {
	rec := LogRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]any{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.Any()
		return true
	})
	root := h.root()
	root.mu.Lock()
	root.records = append(root.records, rec)
	root.mu.Unlock()
	select {
	case root.Notify <- rec:
	default:
	}
	return nil
}

func (h *RecordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &RecordingHandler{attrs: append(slices.Clone(h.attrs), as...), parent: h.root()}
}

func (h *RecordingHandler) WithGroup(string) slog.Handler { return h }

// WaitFor returns the first record with msg that arrives within 5 s (a
// generous bound: the repair itself takes tens of milliseconds).
func (h *RecordingHandler) WaitFor(t *testing.T, msg string) LogRecord {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-h.Notify:
			if r.Msg == msg {
				return r
			}
		case <-deadline:
			t.Fatalf("no %q log record within 5 s", msg)
		}
	}
}

// Count is how many records were kept so far.
func (h *RecordingHandler) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.records)
}

// Since returns the records kept after the first n.
func (h *RecordingHandler) Since(n int) []LogRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.records[n:])
}

// Drain forgets the records waiting in the channel.
func (h *RecordingHandler) Drain() {
	for {
		select {
		case <-h.Notify:
		default:
			return
		}
	}
}
