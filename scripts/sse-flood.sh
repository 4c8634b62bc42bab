#!/usr/bin/env bash
# scripts/sse-flood.sh — open N SSE streams from this one client at once and print what each got.
#
#   scripts/sse-flood.sh [-n 15] [-url http://127.0.0.1:8080] [-path /mcp/sse] [-hold 5] [-token JWT]
#
# Streams are opened one after the other (0.1 s apart) and held open for -hold seconds, so the
# per-IP limit sees them together. With the default config (max_per_ip 10, rate_limit_per_min 5)
# the 6th and later are refused by rate_limit; with rate_limit_per_min 100 the 11th and later by
# ip_limit. Admitted streams count toward the rate for a rolling minute: wait a minute between
# runs (or restart the proxy) to see the same result again.
set -euo pipefail
cd "$(dirname "$0")/.."

N=15 URL=http://127.0.0.1:8080 SSEPATH=/mcp/sse HOLD=5 TOKEN=
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift 2 ;;
    -url) URL=$2; shift 2 ;;
    -path) SSEPATH=$2; shift 2 ;;
    -hold) HOLD=$2; shift 2 ;;
    -token) TOKEN=$2; shift 2 ;;
    *) echo "usage: $0 [-n N] [-url URL] [-path PATH] [-hold SECONDS] [-token JWT]" >&2; exit 2 ;;
  esac
done
case "$N" in ''|*[!0-9]*) echo "-n must be a number" >&2; exit 2 ;; esac
[ "$N" -ge 1 ] && [ "$N" -le 200 ] || { echo "-n must be 1..200" >&2; exit 2; }
if [ -z "$TOKEN" ]; then
  if [ -x bin/stoa-token ]; then TOKEN=$(bin/stoa-token); else TOKEN=$(go run ./cmd/stoa-token); fi
fi

tmp=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

for i in $(seq 1 "$N"); do
  curl -sS -N --max-time "$HOLD" -o "$tmp/$i.body" -D "$tmp/$i.hdr" \
    -H 'Accept: text/event-stream' -H "Authorization: Bearer $TOKEN" "$URL$SSEPATH" 2>/dev/null &
  pids+=($!)
  sleep 0.1
done
wait "${pids[@]}" 2>/dev/null || true
pids=()

ok=0 refused=0
for i in $(seq 1 "$N"); do
  status=$(awk 'NR==1{print $2}' "$tmp/$i.hdr" 2>/dev/null | tr -d '\r')
  retry=$(grep -i '^retry-after:' "$tmp/$i.hdr" 2>/dev/null | awk '{print $2}' | tr -d '\r' || true)
  reason=$(grep -o '"reason":"[a-z_]*"' "$tmp/$i.body" 2>/dev/null | cut -d'"' -f4 || true)
  case "$status" in
    200) ok=$((ok+1)); printf 'stream %2d: 200 open (held %ss)\n' "$i" "$HOLD" ;;
    429) refused=$((refused+1)); printf 'stream %2d: 429 refused  reason=%s  Retry-After: %s\n' "$i" "${reason:-?}" "${retry:-?}" ;;
    '') printf 'stream %2d: no response\n' "$i" ;;
    *) printf 'stream %2d: %s %s\n' "$i" "$status" "$(head -c 200 "$tmp/$i.body" 2>/dev/null)" ;;
  esac
done
echo "admitted: $ok  refused (429): $refused"
