package localproxy

import (
	"io"
	"strings"
	"sync"
)

// fakeEngine is a Go stand-in for the filter, recording what the proxy does.
type fakeEngine struct {
	workers int
	mu      sync.Mutex
	streams []*fakeStream
	// onRequest may return a local reply or mutate headers.
	onRequest  func(s *fakeStream, h []Header) ([]Header, *LocalReply)
	onResponse func(s *fakeStream, h []Header) ([]Header, *LocalReply)
}

func (e *fakeEngine) Workers() int {
	if e.workers == 0 {
		return 2
	}
	return e.workers
}

func (e *fakeEngine) NewStream(w int, info StreamInfo) (Stream, error) {
	s := &fakeStream{e: e, worker: w, info: info, closed: make(chan struct{})}
	e.mu.Lock()
	e.streams = append(e.streams, s)
	e.mu.Unlock()
	return s, nil
}

func (e *fakeEngine) WritePrometheus(w io.Writer) error {
	_, err := io.WriteString(w, "# TYPE stoa_sse_connections_total gauge\nstoa_sse_connections_total{tenant=\"acme\"} 1\n")
	return err
}

func (e *fakeEngine) Close() error { return nil }

func (e *fakeEngine) all() []*fakeStream {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*fakeStream(nil), e.streams...)
}

type fakeStream struct {
	e      *fakeEngine
	worker int
	info   StreamInfo

	mu        sync.Mutex
	events    []string
	reqH      []Header
	respH     []Header
	body      []string
	ended     int
	closeOnce sync.Once
	closed    chan struct{}
}

func (s *fakeStream) record(ev string) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

func (s *fakeStream) Events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

func (s *fakeStream) Ended() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func (s *fakeStream) RequestHeaders(h []Header, eos bool) ([]Header, *LocalReply, error) {
	s.record("request_headers")
	s.mu.Lock()
	s.reqH = append([]Header(nil), h...)
	s.mu.Unlock()
	if s.e.onRequest != nil {
		nh, l := s.e.onRequest(s, h)
		if nh != nil {
			h = nh
		}
		return h, l, nil
	}
	return h, nil, nil
}

func (s *fakeStream) ResponseHeaders(h []Header, eos bool) ([]Header, *LocalReply, error) {
	s.record("response_headers")
	s.mu.Lock()
	s.respH = append([]Header(nil), h...)
	s.mu.Unlock()
	if s.e.onResponse != nil {
		nh, l := s.e.onResponse(s, h)
		if nh != nil {
			h = nh
		}
		return h, l, nil
	}
	return h, nil, nil
}

func (s *fakeStream) ResponseBody(chunk []byte, eos bool) error {
	if eos {
		s.record("response_body_eos")
	} else {
		s.record("response_body")
	}
	s.mu.Lock()
	s.body = append(s.body, string(chunk))
	s.mu.Unlock()
	return nil
}

func (s *fakeStream) Closed() <-chan struct{} { return s.closed }

// Close is what the filter's close_stream does.
func (s *fakeStream) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

func (s *fakeStream) End() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended == 0 {
		s.events = append(s.events, "log", "done", "delete")
	}
	s.ended++
}

func header(hs []Header, name string) []string {
	var out []string
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			out = append(out, h.Value)
		}
	}
	return out
}
