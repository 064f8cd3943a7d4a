#!/usr/bin/env bash
# Issue 8's scale numbers, each printed by this one command (not a CI test):
#   1. 10,000 idle kept-alive connections: the server's RSS, and /healthz with and without them;
#   2. 1k / 10k / 100k / 1M ended tasks with 200-character prompts: RSS and the lookup
#      (GET /v1/tasks/{id}, random ids) p50/p99 at each size;
#   3. journal replay of 1,000,000 events (250,000 tasks, 4 records each).
#
#   bench/scale.sh                 # builds release first
#   BUILD=0 STEPS="idle registry journal" SIZES="1000 1000000" bench/scale.sh
#
# Server pinned to CPU 0, wrk (and the idle holder) to CPU 1. Needs wrk, curl, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${PORT:-8090}"
STEPS="${STEPS:-idle registry journal}"
SIZES="${SIZES:-1000 10000 100000 1000000}"
DURATION="${DURATION:-5s}"
OUT="${OUT:-/tmp/hailuo-hook-scale/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
. "$ROOT/bench/lib.sh"
need wrk curl python3
BIN=$(release_binary)
ulimit -n "$(ulimit -Hn)"

# Room for 10,000 idle connections and a million tasks; idle connections kept for the whole run.
python3 - "$ROOT/config/hailuo-hook.json" "$OUT/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["server"]["max_connections"] = 12000
config["server"]["idle_timeout_s"] = 600
config["registry"]["max_tasks"] = 2000000
config["registry"]["retention_s"] = 31536000
json.dump(config, open(sys.argv[2], "w"), indent=2)
PY

PID=""
start() {  # extra serve arguments...
  taskset -c 0 "$BIN" serve --config "$OUT/config.json" --host 127.0.0.1 --port "$PORT" --log-level "${LOG_LEVEL:-notice}" "$@" > "$OUT/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 3000); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && return; sleep 0.1; done
  echo "server did not start: $(tail -3 "$OUT/server.log")" >&2; exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" || true; sleep 1; }
# Waits until the server is idle (under 5% of a CPU over a second): after seeding, the
# event stream still encodes the seeded changes for a while; measure the steady state.
settle() {
  local a b
  for _ in $(seq 300); do
    a=$(cpu_ticks "$PID"); sleep 1
    b=$(cpu_ticks "$PID")
    [ $((b - a)) -lt 5 ] && return
  done
}
rss_mb() { awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { printf "%.1f (peak %.1f)", r / 1024, h / 1024 }' "/proc/$PID/status"; }
load() {  # name, wrk arguments...
  local name="$1"; shift
  taskset -c 1 wrk -t1 -c64 -d"$DURATION" --latency "$@" > "$OUT/$name.txt" 2>&1
  echo "$(field Requests/sec: "$OUT/$name.txt") req/s, p50 $(field 50% "$OUT/$name.txt"), p99 $(field 99% "$OUT/$name.txt")"
}

if [[ " $STEPS " == *" idle "* ]]; then
  echo "## 10,000 idle keep-alive connections"
  start
  echo "RSS at start: $(rss_mb) MB"
  echo "healthz, c64, no idle connections: $(load healthz-alone "http://127.0.0.1:$PORT/healthz")"
  taskset -c 1 python3 "$ROOT/bench/idle.py" "$PORT" 10000 > "$OUT/idle.out" 2>&1 &
  holder=$!
  for _ in $(seq 600); do grep -q '^ready' "$OUT/idle.out" && break; sleep 0.1; done
  echo "idle holder: $(head -1 "$OUT/idle.out"); open connections (/metrics): $(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^hailuo_open_connections/ { print $2 }')"
  echo "RSS with 10,000 idle connections: $(rss_mb) MB (target ≤ 150 MB)"
  echo "healthz, c64, beside 10,000 idle: $(load healthz-idle "http://127.0.0.1:$PORT/healthz")"
  kill -TERM "$holder"; wait "$holder" || true
  echo "idle holder: $(tail -1 "$OUT/idle.out")"
  stop
fi

if [[ " $STEPS " == *" registry "* ]]; then
  echo "## ended tasks with 200-character prompts: RSS and lookups (GET /v1/tasks/T<random>)"
  for n in $SIZES; do
    start --bench-tasks "$n" --bench-ended --bench-prompt-chars 200
    seeded=$(grep -o 'seeded [0-9]* tasks in [0-9]* ms' "$OUT/server.log" | head -1)
    settle
    echo "$n tasks ($seeded): RSS $(rss_mb) MB; lookups: $(TASKS=$n load "lookup-$n" -s "$ROOT/bench/wrk/task.lua" "http://127.0.0.1:$PORT")"
    stop
  done
  echo "(targets: ≤ 1 GiB RSS at 1M; p99 flat from 1k to 1M)"
fi

if [[ " $STEPS " == *" journal "* ]]; then
  echo "## journal replay of 1,000,000 events"
  rm -f "$OUT/journal.log"
  "$BIN" serve --config "$OUT/config.json" --host 127.0.0.1 --port 0 --log-level notice --journal "$OUT/journal.log" \
    --bench-tasks 250000 --bench-ended --bench-prompt-chars 200 --bench-exit-after-seeding > "$OUT/journal-write.log" 2>&1
  python3 - "$OUT/journal.log" <<'PY'
import json, os, sys
records = events = 0
for line in open(sys.argv[1], "rb"):
    records += 1
    record = json.loads(line.split(b"\t", 1)[1])
    if "task" in record:  # a submission (or a compacted task): itself and the events it carries
        task = record["task"].get("_0", record["task"])
        events += 1 + len(task.get("events", []))
    else:
        events += 1
print(f"journal: {records} records holding {events} events, {os.path.getsize(sys.argv[1]) // 1048576} MiB")
PY
  LOG_LEVEL=info start --journal "$OUT/journal.log"
  echo "replay: $(grep -o 'replayed [0-9]* records, [0-9]* tasks in [0-9]* ms' "$OUT/server.log") (target < 5 s); RSS after $(rss_mb) MB"
  stop
fi
echo "(outputs: $OUT)"
