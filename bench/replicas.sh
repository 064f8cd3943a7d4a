#!/usr/bin/env bash
# Callback throughput with the PostgreSQL store against the in-memory one, and one replica
# against two on one database, in one run (issue 9):
#   BUILD=0 DURATION=10s bench/replicas.sh
# A throw-away cluster (Tests/postgres/cluster.sh, fsync off: the numbers are the store's
# work, not this disk's flushes) serves the database; every server seeds or finds tok0..tok9999
# -> T0..T9999 as the peers' job does, and wrk posts ../shared/peers/wrk/callback.lua to it.
# Not pinned: the servers, PostgreSQL and wrk share this machine's CPUs (nproc below), so two
# replicas show what a second process buys on the same cores, not on a second machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
need wrk curl
BIN=$(release_binary)
OUT=${OUT:-/tmp/hailuo-hook-replicas/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
LUA="$ROOT/../shared/peers/wrk/callback.lua"
cluster=$("$ROOT/Tests/postgres/cluster.sh" start)
URL=$(echo "$cluster" | head -n 1)
DIR=$(echo "$cluster" | tail -n 1)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; "$ROOT/Tests/postgres/cluster.sh" stop "$DIR"; }
trap cleanup EXIT

serve() {  # name port extra-args...
  local name=$1 port=$2; shift 2
  "$BIN" serve --host 127.0.0.1 --port "$port" --log-level notice "$@" > "$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && return; sleep 0.1; done
  echo "$name did not start: $(tail -n 3 "$OUT/$name.log")" >&2; exit 1
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
load() {  # name conns port...
  local name=$1 conns=$2; shift 2
  local p i=0 w=()
  for p in "$@"; do
    wrk -t1 -c"$conns" -d3s -s "$LUA" "http://127.0.0.1:$p" > /dev/null 2>&1 &
    w+=($!)
  done
  wait "${w[@]}"
  w=()
  for p in "$@"; do
    wrk -t1 -c"$conns" -d"$DURATION" --latency -s "$LUA" "http://127.0.0.1:$p" > "$OUT/$name.$i.txt" 2>&1 &
    w+=($!)
    i=$((i + 1))
  done
  wait "${w[@]}"
  local total=0 f rps non2xx=0
  for f in "$OUT/$name".*.txt; do
    rps=$(field "Requests/sec:" "$f")
    total=$(python3 -c "print(round($total + $rps))")
    non2xx=$((non2xx + $(awk '/Non-2xx/ { print $NF }' "$f" | head -n 1 | grep -E '^[0-9]+$' || echo 0)))
  done
  echo "$name: $total callbacks/s ($# wrk x $conns connections; p99 $(field "99%" "$OUT/$name.0.txt"); non-2xx $non2xx)"
}

echo "## callbacks: in memory, PostgreSQL with one replica, PostgreSQL with two (nproc $(nproc), $DURATION, outputs $OUT)"
serve memory 18301 --bench-tasks 10000
load memory "$CONNS" 18301
stop_all
started=$(date +%s.%N)
serve pg-a 18302 --database-url "$URL" --bench-tasks 10000
echo "(seeded 10,000 tasks into PostgreSQL in $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s)"
load postgres-1-replica "$CONNS" 18302
serve pg-b 18303 --database-url "$URL"
load postgres-2-replicas $((CONNS / 2)) 18302 18303
stop_all
