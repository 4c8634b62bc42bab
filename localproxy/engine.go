package localproxy

import (
	"io"
	"net/netip"
)

// Header is one header, proxy-wasm style: lower-case name; pseudo-headers
// (":method", ":path", ":authority", ":scheme", ":status") come first.
type Header struct {
	Name, Value string
}

// LocalReply is a response the filter (or the proxy) produced instead of the
// upstream's.
type LocalReply struct {
	Status  int
	Headers []Header // final headers, without ":status"
	Body    []byte
}

// StreamInfo describes the downstream side of one request, for the host
// properties the filter may read (source.address, destination.address,
// request.*).
type StreamInfo struct {
	Source       netip.AddrPort // the peer
	Destination  netip.AddrPort // the local address the client connected to
	ConnectionID uint64
	Protocol     string // "HTTP/1.1", "HTTP/2"
	RequestID    string
	// JWTPayload is the verified JWT payload (JSON) when the jwt_authn
	// stand-in verified a token, for hosts that expose jwt_authn metadata.
	JWTPayload []byte
}

// Engine runs the filter module: N workers (Envoy's worker threads), each a
// VM sharing one shared-data store.
type Engine interface {
	// Workers is the number of workers, >= 1.
	Workers() int
	// NewStream opens one HTTP stream on worker w (0 <= w < Workers()).
	NewStream(w int, info StreamInfo) (Stream, error)
	// WritePrometheus writes every metric in Prometheus text format, names
	// and labels as Envoy's /stats/prometheus shows them.
	WritePrometheus(w io.Writer) error
	// Close stops the ticks and closes every VM.
	Close() error
}

// Stream is one HTTP stream inside a worker's VM. Its methods may be called
// from the request's goroutine while other streams of the same worker run:
// implementations serialise callbacks per VM. None may panic.
type Stream interface {
	// RequestHeaders runs on_request_headers. It returns the request headers
	// as the filter left them, or a local reply (the upstream is then never
	// reached).
	RequestHeaders(h []Header, endOfStream bool) ([]Header, *LocalReply, error)
	// ResponseHeaders runs on_response_headers (h starts with ":status") and
	// returns the response headers as the filter left them, or a local reply.
	ResponseHeaders(h []Header, endOfStream bool) ([]Header, *LocalReply, error)
	// ResponseBody runs on_response_body for one chunk (chunk may be empty
	// when endOfStream).
	ResponseBody(chunk []byte, endOfStream bool) error
	// Closed is closed when the filter asked to close the stream
	// (close_stream, e.g. from its tick for idle or lifetime).
	Closed() <-chan struct{}
	// End runs on_log, on_done and on_delete. Idempotent.
	End()
}
