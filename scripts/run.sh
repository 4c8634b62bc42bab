#!/usr/bin/env bash
# scripts/run.sh — `make run`: the filter in front of a real MCP server, no Envoy.
#
# Builds filter.wasm (unless fresh), mcp-demo, stoa-proxy and stoa-token into bin/, starts
#   mcp-demo   on $MCP_DEMO_LISTEN (default 127.0.0.1:8081)
#   stoa-proxy on $STOA_LISTEN     (default 127.0.0.1:8080), admin on $STOA_ADMIN (127.0.0.1:9901)
# with the filter's default configuration (or the plugin JSON in $STOA_CONFIG), prints curl
# examples, and stops both cleanly on Ctrl-C. Everything listens on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
WASM=${WASM:-filter.wasm}
LISTEN=${STOA_LISTEN:-127.0.0.1:8080}
ADMIN=${STOA_ADMIN:-127.0.0.1:9901}
UPSTREAM=${MCP_DEMO_LISTEN:-127.0.0.1:8081}
CONFIG=${STOA_CONFIG:-}
WORKERS=${STOA_WORKERS:-2}
PROFILE=${STOA_PROFILE:->=1.39}

say() { printf '\033[1m%s\033[0m\n' "$*" >&2; }

mkdir -p bin
if [ ! -f "$WASM" ] || [ -n "$(find main.go abi config filter -name '*.go' -newer "$WASM" 2>/dev/null | head -1)" ]; then
  say "building $WASM"
  GOOS=wasip1 GOARCH=wasm "$GO" build -buildmode=c-shared -trimpath -ldflags='-s -w' -o "$WASM" .
fi
say "building bin/stoa-proxy bin/stoa-token bin/mcp-demo"
"$GO" build -o bin/stoa-proxy ./cmd/stoa-proxy
"$GO" build -o bin/stoa-token ./cmd/stoa-token
(cd cmd/mcp-demo && "$GO" build -o ../../bin/mcp-demo .)

pids=()
stop() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    say "stopping (pids ${pids[*]})"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_http() { # url what [seconds, default 10]
  for _ in $(seq 1 $((${3:-10} * 10))); do
    if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
    kill -0 "${pids[${#pids[@]}-1]}" 2>/dev/null || { say "$2 exited"; exit 1; }
    sleep 0.1
  done
  say "$2 did not become ready at $1"; exit 1
}

bin/mcp-demo -listen "$UPSTREAM" &
pids+=($!)
wait_http "http://$UPSTREAM/health" mcp-demo

args=(-listen "$LISTEN" -admin "$ADMIN" -upstream "http://$UPSTREAM" -module "$WASM"
      -workers "$WORKERS" -profile "$PROFILE" -jwks demo/jwks.json
      -issuer https://auth.stoa.local/realms/demo -shutdown-timeout 2s)
[ -n "$CONFIG" ] && args+=(-config "$CONFIG")
bin/stoa-proxy "${args[@]}" &
pids+=($!)
# The first start after a build of filter.wasm compiles it to machine code (seconds, more on a
# busy machine); later starts reuse the compiled code from the user cache directory.
wait_http "http://$ADMIN/ready" stoa-proxy 180

P="http://$LISTEN"
cat >&2 <<MSG

stoa-guard is running: $P -> mcp-demo (http://$UPSTREAM)   admin: http://$ADMIN
Try, in another terminal (from the repository root):

  # CORS: a preflight from https://evil.com is refused (403), one from the console is answered (204)
  curl -si -X OPTIONS $P/mcp -H 'Origin: https://evil.com' -H 'Access-Control-Request-Method: POST' | head -1
  curl -si -X OPTIONS $P/mcp -H 'Origin: https://console.stoa.dev' -H 'Access-Control-Request-Method: POST' | head -1

  # Audience: a token for another client is refused (401 + WWW-Authenticate), the right one passes
  curl -si $P/mcp/sse -H "Authorization: Bearer \$(bin/stoa-token -aud other-client)" | grep -iE '^HTTP|^www-auth'
  curl -si -N --max-time 2 $P/mcp/sse -H "Authorization: Bearer \$(bin/stoa-token)" | head -5

  # SSE limits: 15 streams from one client; the 6th is refused by rate_limit (429, Retry-After: 60)
  scripts/sse-flood.sh -n 15 -url $P
  # ...and with sse.rate_limit_per_min raised to 100, the 11th by ip_limit:
  #   STOA_CONFIG=scripts/sse-rate-100.json make run        (then run the flood again)

  # Metrics
  curl -s http://$ADMIN/stats/prometheus | grep stoa_

Ctrl-C stops both.
MSG

# Exit (and stop the other) as soon as either process ends (portable: no `wait -n`).
while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null; do
  sleep 1
done
say "a process exited; stopping"
