//go:build wasip1

package abi

// Raw proxy-wasm 0.2.1 host calls (module "env"). Every parameter is a
// 32-bit word (pointers are guest addresses, *uint32 out-parameters receive
// a 32-bit address or size) except increment_metric's i64 delta and
// record/get metric's u64 value. Each returns a Status word.
// //go:noescape keeps the out-parameters on the caller's stack.

//go:wasmimport env proxy_log
//go:noescape
func proxyLog(level uint32, msg *byte, msgLen uint32) uint32

//go:wasmimport env proxy_get_log_level
//go:noescape
func proxyGetLogLevel(retLevel *uint32) uint32

//go:wasmimport env proxy_get_property
//go:noescape
func proxyGetProperty(path *byte, pathLen uint32, retData *uint32, retLen *uint32) uint32

//go:wasmimport env proxy_get_header_map_value
//go:noescape
func proxyGetHeaderMapValue(mapType uint32, key *byte, keyLen uint32, retData *uint32, retLen *uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
//go:noescape
func proxyGetHeaderMapPairs(mapType uint32, retData *uint32, retLen *uint32) uint32

//go:wasmimport env proxy_add_header_map_value
//go:noescape
func proxyAddHeaderMapValue(mapType uint32, key *byte, keyLen uint32, value *byte, valueLen uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
//go:noescape
func proxyReplaceHeaderMapValue(mapType uint32, key *byte, keyLen uint32, value *byte, valueLen uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
//go:noescape
func proxyRemoveHeaderMapValue(mapType uint32, key *byte, keyLen uint32) uint32

//go:wasmimport env proxy_send_local_response
//go:noescape
func proxySendLocalResponse(statusCode uint32, details *byte, detailsLen uint32, body *byte, bodyLen uint32, headers *byte, headersLen uint32, grpcStatus int32) uint32

//go:wasmimport env proxy_get_shared_data
//go:noescape
func proxyGetSharedData(key *byte, keyLen uint32, retData *uint32, retLen *uint32, retCas *uint32) uint32

//go:wasmimport env proxy_set_shared_data
//go:noescape
func proxySetSharedData(key *byte, keyLen uint32, value *byte, valueLen uint32, cas uint32) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
//go:noescape
func proxySetTickPeriodMilliseconds(millis uint32) uint32

//go:wasmimport env proxy_get_current_time_nanoseconds
//go:noescape
func proxyGetCurrentTimeNanoseconds(retTime *uint64) uint32

//go:wasmimport env proxy_set_effective_context
//go:noescape
func proxySetEffectiveContext(contextID uint32) uint32

//go:wasmimport env proxy_close_stream
//go:noescape
func proxyCloseStream(streamType uint32) uint32

//go:wasmimport env proxy_continue_stream
//go:noescape
func proxyContinueStream(streamType uint32) uint32

//go:wasmimport env proxy_define_metric
//go:noescape
func proxyDefineMetric(kind uint32, name *byte, nameLen uint32, retID *uint32) uint32

//go:wasmimport env proxy_increment_metric
//go:noescape
func proxyIncrementMetric(id uint32, delta int64) uint32

//go:wasmimport env proxy_record_metric
//go:noescape
func proxyRecordMetric(id uint32, value uint64) uint32

//go:wasmimport env proxy_get_metric
//go:noescape
func proxyGetMetric(id uint32, retValue *uint64) uint32

//go:wasmimport env proxy_get_buffer_bytes
//go:noescape
func proxyGetBufferBytes(bufferType uint32, start uint32, maxSize uint32, retData *uint32, retLen *uint32) uint32
