package filter

import (
	"fmt"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/config"
	"github.com/stoa-platform/stoa-guard/filter/audience"
	"github.com/stoa-platform/stoa-guard/filter/cors"
	"github.com/stoa-platform/stoa-guard/filter/identity"
	"github.com/stoa-platform/stoa-guard/filter/limiter"
)

// NewVMContext returns the plugin's VM context. host is how every context of
// this VM reaches the proxy, clock is the only source of time, env resolves
// the operator variables of SPEC.md. Nothing is read before configuration.
func NewVMContext(host Host, clock Clock, env Env) types.VMContext {
	return &vmContext{host: host, clock: clock, env: env}
}

type vmContext struct {
	host  Host
	clock Clock
	env   Env
}

// OnVMStart accepts any VM configuration: the filter is configured per plugin.
func (*vmContext) OnVMStart(int) types.OnVMStartStatus { return types.OnVMStartStatusOK }

// NewPluginContext returns the root context of one plugin configuration.
func (v *vmContext) NewPluginContext(id uint32) types.PluginContext {
	return &plugin{vm: v, host: v.host, clock: v.clock, id: id}
}

// plugin is the root context: it owns the configuration, the decision
// objects, the metrics and every stream of this VM.
type plugin struct {
	vm    *vmContext
	host  Host
	clock Clock
	id    uint32

	cfg      *config.Config
	cors     *cors.Policy
	checker  *audience.Checker
	exempt   audience.Exempt
	resolver *identity.Resolver
	limiter  *limiter.Limiter
	metrics  *metrics
	replies  *replies

	// metadataPaths are the property paths of jwt_authn's payload_in_metadata
	// (aud, tenant claim), built once; empty when the header is the source.
	metaAud, metaTenant string

	// Per-VM scratch, reused by every stream (one callback runs at a time).
	headers []abi.Header
	xff     []string
	decoder *audience.Decoder
	claims  audience.Claims

	streams streams
}

// OnPluginStart parses and validates the configuration. On error it logs one
// critical line naming the key, the bad value and what is expected, and
// refuses to start (proxy_on_configure returns false).
func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	if err := p.configure(); err != nil {
		p.host.Log(abi.LogCritical, "stoa-guard: refusing to start: "+err.Error())
		return types.OnPluginStartStatusFailed
	}
	for _, w := range p.cfg.Warnings() {
		p.host.Log(abi.LogWarn, "stoa-guard: "+w)
	}
	return types.OnPluginStartStatusOK
}

func (p *plugin) configure() error {
	raw, err := p.host.PluginConfig()
	if err != nil && err != abi.ErrNotFound && err != abi.ErrEmpty {
		return fmt.Errorf("reading the plugin configuration: %v", err)
	}
	cfg, err := config.Parse(raw, p.vm.env)
	if err != nil {
		return err
	}
	p.cfg = cfg
	p.cors = cfg.CORS.Policy
	p.checker = audience.NewChecker(cfg.Audience.Allowed, cfg.Audience.AllowMissing)
	p.exempt = audience.NewExempt(cfg.Audience.ExemptPaths)
	p.decoder = audience.NewDecoder(cfg.Audience.TenantClaim)
	if p.resolver, err = identity.NewResolver(cfg.ClientIP.TrustedProxies, cfg.ClientIP.IPv6Prefix); err != nil {
		return err
	}
	if key := cfg.Audience.PayloadMetadataKey; key != "" {
		base := "metadata\x00filter_metadata\x00envoy.filters.http.jwt_authn\x00" + key + "\x00"
		p.metaAud, p.metaTenant = base+"aud", base+cfg.Audience.TenantClaim
	}
	if p.metrics, err = newMetrics(p.host, cfg.Metrics.MaxTenantLabels); err != nil {
		return fmt.Errorf("defining metrics: %v", err)
	}
	p.replies = newReplies(p.cors, cfg.SSE.RetryAfter)
	p.headers = make([]abi.Header, 0, 64)
	p.xff = make([]string, 0, 8)
	if cfg.SSE.Enabled {
		p.limiter, err = limiter.New(limiterConfig(cfg), hostStore{p.host})
		if err != nil {
			return err
		}
		if err := p.host.SetTickPeriod(cfg.SSE.Tick); err != nil {
			return fmt.Errorf("setting the tick period: %v", err)
		}
	}
	return nil
}

// OnPluginDone lets the host tear the plugin down at once.
func (*plugin) OnPluginDone() bool { return true }

// OnQueueReady is unused: the filter registers no queue.
func (*plugin) OnQueueReady(uint32) {}

// NewTcpContext returns nil: stoa-guard is an HTTP filter only.
func (*plugin) NewTcpContext(uint32) types.TcpContext { return nil }

// NewHttpContext returns a stream from the free list.
func (p *plugin) NewHttpContext(id uint32) types.HttpContext {
	return p.streams.get(p, id)
}

// OnTick closes this VM's admitted streams that were idle for idle_timeout or
// reached their lifetime (set_effective_context + close_stream), and forgets
// streams whose end never came once their lease can no longer count.
func (p *plugin) OnTick() {
	if p.cfg == nil || !p.cfg.SSE.Enabled {
		return
	}
	now := p.clock()
	idle := p.cfg.SSE.IdleTimeout
	dry := p.cfg.Mode.SSEDryRun
	for i := 0; i < len(p.streams.active); {
		s := p.streams.active[i]
		if s.active { // response bytes since the last tick
			s.active, s.lastActivity = false, now
		}
		switch {
		case s.closeReason < 0 && !now.Before(s.lease.Deadline()):
			p.closeStream(s, closeMaxDuration, dry)
		case s.closeReason < 0 && now.Sub(s.lastActivity) >= idle:
			p.closeStream(s, closeIdle, dry)
		case now.After(s.lease.Deadline().Add(2 * p.cfg.SSE.Tick)):
			// Its end was never reported: the lease has expired in shared
			// data; release (a no-op by now) and stop tracking it.
			s.release(now)
			continue // release removed active[i]
		}
		i++
	}
	if p.limiter != nil {
		p.metrics.resyncTenantGauges(p.limiter, now)
	}
}

// closeStream resets s from the tick (or only counts it, in dry run).
func (p *plugin) closeStream(s *stream, reason int, dryRun bool) {
	s.closeReason = reason
	p.metrics.closedInc(reason)
	if dryRun {
		p.host.Log(abi.LogInfo, "stoa-guard: dry run: would close SSE stream: "+closeReasons[reason])
		return
	}
	if err := p.host.SetEffectiveContext(s.id); err != nil {
		return // already gone: its end callbacks release it
	}
	_ = p.host.CloseStream()
}

// hostStore is the limiter's Store over shared data.
type hostStore struct{ h Host }

func (s hostStore) Get(key string, dst []byte) ([]byte, uint32, error) {
	return s.h.SharedGet(key, dst)
}
func (s hostStore) Set(key string, v []byte, cas uint32) error { return s.h.SharedSet(key, v, cas) }

// limiterConfig is the limiter's configuration from the plugin's.
func limiterConfig(cfg *config.Config) limiter.Config {
	return limiter.Config{
		MaxPerIP:      cfg.SSE.MaxPerIP,
		MaxPerTenant:  cfg.SSE.MaxPerTenant,
		MaxTotal:      cfg.SSE.MaxTotal,
		RatePerMin:    cfg.SSE.RateLimitPerMin,
		MaxDuration:   cfg.SSE.MaxDuration,
		Tick:          cfg.SSE.Tick,
		IPBuckets:     cfg.SSE.IPBuckets,
		TenantBuckets: cfg.SSE.TenantBuckets,
		Scope:         cfg.SSE.Scope,
	}
}
