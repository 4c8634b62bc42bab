package wasmhost_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// Host methods are safe for concurrent use: VMs start while another
// goroutine advances the clock (firing ticks on every VM) and reads the
// host's logs, metrics and VM list; then the host closes while VMs are
// still starting. Run under -race.
func TestHostConcurrentNewVMAdvanceClose(t *testing.T) {
	m := newMod()
	setTick := m.Import("env", "proxy_set_tick_period_milliseconds", p(1), p(1))
	log := m.Import("env", "proxy_log", p(3), p(1))
	m.proxyBasics()
	m.Func("proxy_on_vm_start", p(2), p(1), nil, i32c(10), call(setTick), drop, i32c(1))
	m.Func("proxy_on_tick", p(1), nil, nil, i32c(int32(wasmhost.LogDebug)), i32c(0x1000), i32c(0), call(log), drop)
	h, err := wasmhost.NewHost(context.Background(), m.Bytes(), wasmhost.Config{Clock: wasmhost.NewClock(start)})
	must(t, err)

	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = h.Advance(10 * time.Millisecond)
			_ = h.LogCount(wasmhost.LogDebug)
			_ = h.Metrics().Snapshot()
			for _, vm := range h.VMs() {
				_ = vm.LiveStreams()
				_ = vm.HostCallCounts()
				_ = vm.MemoryBytes()
			}
		}
	}()
	var started []*wasmhost.VM
	for range 20 {
		vm, err := h.NewVM(ctx)
		must(t, err)
		started = append(started, vm)
	}
	var closers sync.WaitGroup
	closers.Add(2)
	go func() {
		defer closers.Done()
		for range 10 {
			if _, err := h.NewVM(ctx); err != nil && !errors.Is(err, wasmhost.ErrClosed) {
				t.Error(err)
			}
		}
	}()
	go func() {
		defer closers.Done()
		must(t, h.Close(ctx))
	}()
	closers.Wait()
	close(stop)
	wg.Wait()
	if h.LogCount(wasmhost.LogDebug) == 0 {
		t.Error("no tick ran")
	}
	// Close again: every VM, including those started during the first Close, is closed.
	must(t, h.Close(ctx))
	for _, vm := range append(started, h.VMs()...) {
		if _, err := vm.NewStream(nil); !errors.Is(err, wasmhost.ErrClosed) {
			t.Fatalf("VM %d after Close: %v", vm.ID(), err)
		}
	}
}
