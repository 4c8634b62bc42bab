// Package localproxy is the HTTP front of stoa-proxy: a small edge proxy that
// runs the filter module the way Envoy runs it, with no Envoy.
//
// One request walks the same way as through Envoy's HTTP connection manager:
//
//  1. connection manager: hop-by-hop and x-envoy-* headers dropped, the peer
//     appended to X-Forwarded-For (use_remote_address: true; duplicate XFF
//     headers coalesced with "," as Envoy's inline header map does),
//     x-forwarded-proto and x-request-id set;
//  2. the jwt_authn stand-in (package jwtauthn): the client-sent payload
//     header is always removed; a valid bearer token's payload is forwarded
//     in it; an invalid token is answered 401 here; no token passes;
//  3. the Wasm filter, on a worker picked per downstream connection
//     (round-robin, like Envoy's listener balancing connections over worker
//     threads): on_request_headers, then — unless it answered locally —
//     the upstream request, on_response_headers, and on_response_body once per
//     upstream body chunk, each chunk flushed to the client at once (SSE is
//     never buffered);
//  4. the stream ends with on_log → on_done → on_delete exactly once,
//     whatever ended it: the response completed, the client went away, the
//     upstream failed, or the filter closed the stream (close_stream from its
//     tick), in which case the client connection is reset.
//
// The filter runtime is reached through the Engine interface; the wasmhost
// adapter (NewWasmEngine) is the production one, tests also use fakes.
//
// Everything is bounded: header bytes, the upstream dial, the wait for
// upstream response headers, connection idle time, shutdown.
package localproxy
