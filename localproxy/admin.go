package localproxy

import (
	"bytes"
	"net/http"
	"sync/atomic"
)

// Admin serves the admin endpoints, like a (tiny) Envoy admin:
//
//	/stats/prometheus  the filter's metrics, Prometheus text format
//	/ready             200 "LIVE" while serving, 503 "DRAINING" once draining
//
// Bind it to loopback: it has no authentication.
type Admin struct {
	Engine   Engine
	draining atomic.Bool
}

// SetDraining makes /ready answer 503 (on shutdown).
func (a *Admin) SetDraining() { a.draining.Store(true) }

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writePlain(w, http.StatusMethodNotAllowed, "method not allowed\n")
		return
	}
	switch r.URL.Path {
	case "/ready":
		if a.draining.Load() {
			writePlain(w, http.StatusServiceUnavailable, "DRAINING\n")
			return
		}
		writePlain(w, http.StatusOK, "LIVE\n")
	case "/stats/prometheus":
		var b bytes.Buffer
		if err := a.Engine.WritePrometheus(&b); err != nil {
			writePlain(w, http.StatusInternalServerError, "cannot read metrics\n")
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(b.Bytes())
	default:
		writePlain(w, http.StatusNotFound, "not found\n")
	}
}
