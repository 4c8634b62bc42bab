package wasmhost

import (
	"context"
	"sort"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// hostFunc is one host function's body. st holds the parameters on entry and
// the result on return (api.GoModuleFunc's stack convention).
type hostFunc func(vm *VM, st []uint64)

// envImpl implements the env functions the host supports. A function of
// envSig missing here answers Unimplemented (12), as Envoy does for calls it
// has no handler for in an HTTP filter (queues, gRPC, HTTP calls, foreign
// functions, set_buffer_bytes).
var envImpl = map[string]hostFunc{
	"proxy_log":                          hLog,
	"proxy_get_log_level":                hGetLogLevel,
	"proxy_get_property":                 hGetProperty,
	"proxy_set_property":                 hSetProperty,
	"proxy_get_header_map_value":         hGetHeaderValue,
	"proxy_get_header_map_pairs":         hGetHeaderPairs,
	"proxy_set_header_map_pairs":         hSetHeaderPairs,
	"proxy_get_header_map_size":          hGetHeaderSize,
	"proxy_add_header_map_value":         hAddHeader,
	"proxy_replace_header_map_value":     hReplaceHeader,
	"proxy_remove_header_map_value":      hRemoveHeader,
	"proxy_send_local_response":          hSendLocalResponse,
	"proxy_get_shared_data":              hGetSharedData,
	"proxy_set_shared_data":              hSetSharedData,
	"proxy_set_tick_period_milliseconds": hSetTickPeriod,
	"proxy_get_current_time_nanoseconds": hCurrentTime,
	"proxy_define_metric":                hDefineMetric,
	"proxy_increment_metric":             hIncrementMetric,
	"proxy_record_metric":                hRecordMetric,
	"proxy_get_metric":                   hGetMetric,
	"proxy_set_effective_context":        hSetEffectiveContext,
	"proxy_close_stream":                 hCloseStream,
	"proxy_continue_stream":              hContinueStream,
	"proxy_get_buffer_bytes":             hGetBufferBytes,
	"proxy_get_buffer_status":            hGetBufferStatus,
	"proxy_get_status":                   func(vm *VM, st []uint64) { st[0] = uint64(StatusNotFound) },
	"proxy_done":                         func(vm *VM, st []uint64) { st[0] = uint64(StatusNotFound) },
	"pthread_equal": func(vm *VM, st []uint64) {
		if uint32(st[0]) == uint32(st[1]) {
			st[0] = 1
		} else {
			st[0] = 0
		}
	},
	"emscripten_notify_memory_growth": func(vm *VM, st []uint64) {},
}

// enter counts a host call and enforces the restricted-callback lists: a
// call outside the list traps, failing the VM, as in Envoy.
func (vm *VM) enter(idx int, key string) {
	vm.stats.HostCalls++
	vm.byName[idx]++
	if vm.h.cfg.Trace != nil {
		vm.h.cfg.Trace(vm.id, "==> "+vm.names[idx])
	}
	if vm.restrict != nil && !vm.restrict[key] {
		panic(&trap{"restricted_callback: " + vm.names[idx] + " is not allowed during " + vm.phase})
	}
}

func (vm *VM) addName(n string) int {
	vm.names = append(vm.names, n)
	vm.byName = append(vm.byName, 0)
	return len(vm.names) - 1
}

func (vm *VM) registerEnv(ctx context.Context) error {
	return vm.register(ctx, "env", envSig, envImpl, "env.", uint64(StatusUnimplemented))
}

// register instantiates host module mod with a function for every name of
// sigs: impls[name], or one answering unimplemented. Each call is counted
// and checked against the restricted-callback lists under prefix+name.
func (vm *VM) register(ctx context.Context, mod string, sigs map[string][2][]api.ValueType,
	impls map[string]hostFunc, prefix string, unimplemented uint64) error {
	b := vm.rt.NewHostModuleBuilder(mod)
	names := make([]string, 0, len(sigs))
	for n := range sigs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		sig := sigs[name]
		impl := impls[name]
		idx, key, hasResult := vm.addName(mod+"."+name), prefix+name, len(sig[1]) > 0
		f := func(_ context.Context, _ api.Module, st []uint64) {
			vm.enter(idx, key)
			if impl == nil {
				if hasResult {
					st[0] = unimplemented
				}
				return
			}
			impl(vm, st)
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(f), sig[0], sig[1]).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// --- memory helpers -------------------------------------------------------

func (vm *VM) read(ptr, n uint32) ([]byte, bool) {
	b, ok := vm.mem.Read(ptr, n)
	if ok {
		vm.stats.BytesFromGuest += uint64(n)
	}
	return b, ok
}

func (vm *VM) putU32(ptr, v uint32) bool { return vm.mem.WriteUint32Le(ptr, v) }

func (vm *VM) putU64(ptr uint32, v uint64) bool { return vm.mem.WriteUint64Le(ptr, v) }

// copyOut hands data to the guest as cpp-host's copyToPointerSize does: it
// allocates len(data) bytes with the guest allocator (none for empty data),
// copies, and writes the pointer and size words.
func (vm *VM) copyOut(data []byte, ptrPtr, sizePtr uint32) Status {
	var p uint32
	if len(data) > 0 {
		var ok bool
		if p, ok = vm.alloc(uint32(len(data))); !ok {
			return StatusInvalidMemoryAccess
		}
		if !vm.mem.Write(p, data) {
			return StatusInvalidMemoryAccess
		}
		vm.stats.BytesToGuest += uint64(len(data))
	}
	if !vm.putU32(ptrPtr, p) || !vm.putU32(sizePtr, uint32(len(data))) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}

func (vm *VM) stream() *Stream {
	if vm.effective == RootContextID {
		return nil
	}
	return vm.streams[vm.effective]
}

func lowerASCII(b []byte) string {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			out := []byte(string(b))
			for i, c := range out {
				if 'A' <= c && c <= 'Z' {
					out[i] = c + 'a' - 'A'
				}
			}
			return string(out)
		}
	}
	return string(b)
}

// headerMap returns the map of type t for the effective stream, or a status.
func (vm *VM) headerMap(t uint32) (*[]Header, Status) {
	s := vm.stream()
	if s == nil {
		return nil, StatusBadArgument
	}
	switch t {
	case mapRequestHeaders:
		if !s.haveReq {
			return nil, StatusBadArgument
		}
		return &s.reqHeaders, StatusOK
	case mapRequestTrailers:
		return &s.reqTrailers, StatusOK
	case mapResponseHeaders:
		if !s.haveResp {
			return nil, StatusBadArgument
		}
		return &s.respHeaders, StatusOK
	case mapResponseTrailers:
		return &s.respTrailers, StatusOK
	}
	return nil, StatusBadArgument
}

// --- env functions ----------------------------------------------------------

func hLog(vm *VM, st []uint64) {
	msg, ok := vm.read(uint32(st[1]), uint32(st[2]))
	if !ok {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	vm.h.log(vm.id, vm.effective, LogLevel(uint32(st[0])), string(msg))
	st[0] = uint64(StatusOK)
}

func hGetLogLevel(vm *VM, st []uint64) {
	if !vm.putU32(uint32(st[0]), uint32(vm.h.cfg.LogLevel)) {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	st[0] = uint64(StatusOK)
}

func hGetProperty(vm *VM, st []uint64) {
	path, ok := vm.read(uint32(st[0]), uint32(st[1]))
	if !ok {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	var streamProps Properties
	if s := vm.stream(); s != nil {
		streamProps = s.props
	}
	v, found := lookupProperty(string(path), streamProps, vm.h.cfg.Properties)
	if !found {
		switch string(path) {
		case "plugin_root_id":
			v, found = vm.h.cfg.RootID, true
		case "plugin_name":
			v, found = vm.h.cfg.PluginName, true
		case "plugin_vm_id":
			v, found = vm.h.cfg.VMID, true
		}
	}
	if !found {
		st[0] = uint64(StatusNotFound)
		return
	}
	b, ok := serializeProperty(v)
	if !ok {
		st[0] = uint64(StatusSerializationFailed)
		return
	}
	st[0] = uint64(vm.copyOut(b, uint32(st[2]), uint32(st[3])))
}

func hSetProperty(vm *VM, st []uint64) {
	path, ok1 := vm.read(uint32(st[0]), uint32(st[1]))
	val, ok2 := vm.read(uint32(st[2]), uint32(st[3]))
	if !ok1 || !ok2 {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	s := vm.stream()
	if s == nil {
		st[0] = uint64(StatusBadArgument)
		return
	}
	if s.props == nil {
		s.props = Properties{}
	}
	s.props[string(path)] = string(val)
	st[0] = uint64(StatusOK)
}

func hGetHeaderValue(vm *VM, st []uint64) {
	m, k, status := vm.mapKey(st)
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	for _, h := range *m {
		if h.Name == k {
			st[0] = uint64(vm.copyOut([]byte(h.Value), uint32(st[3]), uint32(st[4])))
			return
		}
	}
	st[0] = uint64(StatusNotFound)
}

func hGetHeaderPairs(vm *VM, st []uint64) {
	m, status := vm.headerMap(uint32(st[0]))
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	vm.scratch = appendPairs(vm.scratch[:0], *m)
	st[0] = uint64(vm.copyOut(vm.scratch, uint32(st[1]), uint32(st[2])))
}

func hSetHeaderPairs(vm *VM, st []uint64) {
	m, status := vm.headerMap(uint32(st[0]))
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	b, ok := vm.read(uint32(st[1]), uint32(st[2]))
	if !ok {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	pairs := DecodePairs(b)
	*m = (*m)[:0]
	for _, p := range pairs {
		*m = append(*m, Header{lowerASCII([]byte(p.Name)), p.Value})
	}
	st[0] = uint64(StatusOK)
}

func hGetHeaderSize(vm *VM, st []uint64) {
	m, status := vm.headerMap(uint32(st[0]))
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	if !vm.putU32(uint32(st[1]), uint32(pairsSize(*m))) {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	st[0] = uint64(StatusOK)
}

// mapKey resolves the header map (st[0]) and the lower-cased key (st[1], st[2]).
func (vm *VM) mapKey(st []uint64) (*[]Header, string, Status) {
	m, status := vm.headerMap(uint32(st[0]))
	if status != StatusOK {
		return nil, "", status
	}
	key, ok := vm.read(uint32(st[1]), uint32(st[2]))
	if !ok {
		return nil, "", StatusInvalidMemoryAccess
	}
	return m, lowerASCII(key), StatusOK
}

// headerKV is mapKey plus the value (st[3], st[4]).
func (vm *VM) headerKV(st []uint64) (*[]Header, string, string, Status) {
	m, k, status := vm.mapKey(st)
	if status != StatusOK {
		return nil, "", "", status
	}
	v, ok := vm.read(uint32(st[3]), uint32(st[4]))
	if !ok {
		return nil, "", "", StatusInvalidMemoryAccess
	}
	return m, k, string(v), StatusOK
}

func hAddHeader(vm *VM, st []uint64) {
	m, k, v, status := vm.headerKV(st)
	if status == StatusOK {
		*m = append(*m, Header{k, v})
	}
	st[0] = uint64(status)
}

// hReplaceHeader sets the first header named k and removes the others
// (Envoy's setCopy); adds it when absent.
func hReplaceHeader(vm *VM, st []uint64) {
	m, k, v, status := vm.headerKV(st)
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	out, set := (*m)[:0], false
	for _, h := range *m {
		if h.Name == k {
			if set {
				continue
			}
			h.Value, set = v, true
		}
		out = append(out, h)
	}
	if !set {
		out = append(out, Header{k, v})
	}
	*m = out
	st[0] = uint64(StatusOK)
}

func hRemoveHeader(vm *VM, st []uint64) {
	m, k, status := vm.mapKey(st)
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	out := (*m)[:0]
	for _, h := range *m {
		if h.Name != k {
			out = append(out, h)
		}
	}
	*m = out
	st[0] = uint64(StatusOK)
}

func hSendLocalResponse(vm *VM, st []uint64) {
	s := vm.stream()
	if s == nil {
		st[0] = uint64(StatusBadArgument)
		return
	}
	details, ok1 := vm.read(uint32(st[1]), uint32(st[2]))
	body, ok2 := vm.read(uint32(st[3]), uint32(st[4]))
	hdrs, ok3 := vm.read(uint32(st[5]), uint32(st[6]))
	if !ok1 || !ok2 || !ok3 {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	lr := &LocalResponse{Status: int(uint32(st[0])), Details: string(details),
		Body: append([]byte(nil), body...), GRPCStatus: int32(uint32(st[7]))}
	for _, p := range DecodePairs(hdrs) {
		lr.Headers = append(lr.Headers, Header{lowerASCII([]byte(p.Name)), p.Value})
	}
	s.local, s.stopped = lr, true
	st[0] = uint64(StatusOK)
}

func hGetSharedData(vm *VM, st []uint64) {
	key, ok := vm.read(uint32(st[0]), uint32(st[1]))
	if !ok {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	var cas uint32
	status := vm.h.shared.get(vm.h.cfg.VMID, key, func(v []byte, c uint32) Status {
		vm.scratch, cas = append(vm.scratch[:0], v...), c
		return StatusOK
	})
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	if status = vm.copyOut(vm.scratch, uint32(st[2]), uint32(st[3])); status == StatusOK && !vm.putU32(uint32(st[4]), cas) {
		status = StatusInvalidMemoryAccess
	}
	st[0] = uint64(status)
}

func hSetSharedData(vm *VM, st []uint64) {
	key, ok1 := vm.read(uint32(st[0]), uint32(st[1]))
	val, ok2 := vm.read(uint32(st[2]), uint32(st[3]))
	if !ok1 || !ok2 {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	st[0] = uint64(vm.h.shared.set(vm.h.cfg.VMID, key, val, uint32(st[4])))
}

func hSetTickPeriod(vm *VM, st []uint64) {
	vm.tickPeriod = time.Duration(uint32(st[0])) * time.Millisecond
	vm.nextTick = vm.h.clock.Now().Add(vm.tickPeriod)
	st[0] = uint64(StatusOK)
}

func hCurrentTime(vm *VM, st []uint64) {
	if !vm.putU64(uint32(st[0]), uint64(vm.h.clock.Now().UnixNano())) {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	st[0] = uint64(StatusOK)
}

func hDefineMetric(vm *VM, st []uint64) {
	name, ok := vm.read(uint32(st[1]), uint32(st[2]))
	if !ok {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	id, status := vm.metrics.define(vm.h.metrics, MetricType(uint32(st[0])), string(name))
	if status == StatusOK && !vm.putU32(uint32(st[3]), id) {
		status = StatusInvalidMemoryAccess
	}
	st[0] = uint64(status)
}

func hIncrementMetric(vm *VM, st []uint64) {
	st[0] = uint64(vm.metrics.increment(uint32(st[0]), int64(st[1])))
}

func hRecordMetric(vm *VM, st []uint64) {
	st[0] = uint64(vm.metrics.record(uint32(st[0]), st[1]))
}

func hGetMetric(vm *VM, st []uint64) {
	v, status := vm.metrics.value(uint32(st[0]))
	if status == StatusOK && !vm.putU64(uint32(st[1]), v) {
		status = StatusInvalidMemoryAccess
	}
	st[0] = uint64(status)
}

func hSetEffectiveContext(vm *VM, st []uint64) {
	id := uint32(st[0])
	if id != RootContextID && vm.streams[id] == nil {
		st[0] = uint64(StatusBadArgument)
		return
	}
	vm.effective = id
	st[0] = uint64(StatusOK)
}

func hCloseStream(vm *VM, st []uint64) {
	s := vm.stream()
	if s == nil || s.ended {
		st[0] = uint64(StatusBadArgument)
		return
	}
	t := StreamType(uint32(st[0]))
	if t > StreamUpstream {
		st[0] = uint64(StatusBadArgument)
		return
	}
	s.closedTypes = append(s.closedTypes, t)
	if !s.closeRequested {
		s.closeRequested = true
		vm.pending = append(vm.pending, s)
	}
	st[0] = uint64(StatusOK)
}

func hContinueStream(vm *VM, st []uint64) {
	s := vm.stream()
	if s == nil {
		st[0] = uint64(StatusBadArgument)
		return
	}
	s.continues++
	st[0] = uint64(StatusOK)
}

// buffer returns the buffer of type t readable in the current callback.
func (vm *VM) bufferOf(t uint32) ([]byte, Status) {
	switch {
	case t > bufMax:
		return nil, StatusBadArgument
	case t == vm.cfgType:
		return vm.cfgBuf, StatusOK
	case t == vm.bufType:
		return vm.buffer, StatusOK
	}
	return nil, StatusNotFound
}

func hGetBufferBytes(vm *VM, st []uint64) {
	buf, status := vm.bufferOf(uint32(st[0]))
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	start, max := uint64(uint32(st[1])), uint64(uint32(st[2]))
	if start > uint64(len(buf)) {
		st[0] = uint64(StatusBadArgument)
		return
	}
	end := min(start+max, uint64(len(buf)))
	st[0] = uint64(vm.copyOut(buf[start:end], uint32(st[3]), uint32(st[4])))
}

func hGetBufferStatus(vm *VM, st []uint64) {
	buf, status := vm.bufferOf(uint32(st[0]))
	if status != StatusOK {
		st[0] = uint64(status)
		return
	}
	if !vm.putU32(uint32(st[1]), uint32(len(buf))) || !vm.putU32(uint32(st[2]), 0) {
		st[0] = uint64(StatusInvalidMemoryAccess)
		return
	}
	st[0] = uint64(StatusOK)
}
