//go:build !wasip1

package abi

// Native stand-ins for the raw host calls: outside a wasip1 module there is
// no proxy-wasm host, so every call reports StatusUnimplemented and writes
// nothing. Natively, drive the filter through the SDK's proxytest emulator.

func proxyLog(level uint32, msg *byte, msgLen uint32) uint32 { return uint32(StatusUnimplemented) }

func proxyGetLogLevel(retLevel *uint32) uint32 { return uint32(StatusUnimplemented) }

func proxyGetProperty(path *byte, pathLen uint32, retData *uint32, retLen *uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxyGetHeaderMapValue(mapType uint32, key *byte, keyLen uint32, retData *uint32, retLen *uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxyGetHeaderMapPairs(mapType uint32, retData *uint32, retLen *uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxyAddHeaderMapValue(mapType uint32, key *byte, keyLen uint32, value *byte, valueLen uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxyReplaceHeaderMapValue(mapType uint32, key *byte, keyLen uint32, value *byte, valueLen uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxyRemoveHeaderMapValue(mapType uint32, key *byte, keyLen uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxySendLocalResponse(statusCode uint32, details *byte, detailsLen uint32, body *byte, bodyLen uint32, headers *byte, headersLen uint32, grpcStatus int32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxyGetSharedData(key *byte, keyLen uint32, retData *uint32, retLen *uint32, retCas *uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxySetSharedData(key *byte, keyLen uint32, value *byte, valueLen uint32, cas uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxySetTickPeriodMilliseconds(millis uint32) uint32   { return uint32(StatusUnimplemented) }
func proxyGetCurrentTimeNanoseconds(retTime *uint64) uint32 { return uint32(StatusUnimplemented) }

func proxySetEffectiveContext(contextID uint32) uint32 { return uint32(StatusUnimplemented) }

func proxyCloseStream(streamType uint32) uint32 { return uint32(StatusUnimplemented) }

func proxyContinueStream(streamType uint32) uint32 { return uint32(StatusUnimplemented) }

func proxyDefineMetric(kind uint32, name *byte, nameLen uint32, retID *uint32) uint32 {
	return uint32(StatusUnimplemented)
}

func proxyIncrementMetric(id uint32, delta int64) uint32 { return uint32(StatusUnimplemented) }

func proxyRecordMetric(id uint32, value uint64) uint32 { return uint32(StatusUnimplemented) }

func proxyGetMetric(id uint32, retValue *uint64) uint32 { return uint32(StatusUnimplemented) }

func proxyGetBufferBytes(bufferType uint32, start uint32, maxSize uint32, retData *uint32, retLen *uint32) uint32 {
	return uint32(StatusUnimplemented)
}
