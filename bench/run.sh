#!/usr/bin/env bash
# Runs hailuo-hook and its peers (Hummingbird 2, FlyingFox, nginx) in ONE run of
# ../shared/peers/bench.sh, with identical wrk parameters and pinning, then
# prints each route's ratio product/peer against DESIGN.md's targets.
#
#   bench/run.sh                       # build release, run all four, print the table
#   BUILD=0 bench/run.sh               # reuse the binaries of the last run
#   DURATION=5s bench/run.sh           # any bench.sh variable passes through
#
# Needs wrk, nginx and curl (apt-get install -y wrk nginx curl). The peers are
# built by bench.sh under /tmp/peers-build; nothing is written into ../shared.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS_DIR:-$ROOT/../shared/peers}"
[ -x "$PEERS/bench.sh" ] || { echo "no $PEERS/bench.sh (../shared beside the project)" >&2; exit 1; }
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install -y wrk nginx curl" >&2; exit 1; }
done

if [ "${BUILD:-1}" = 1 ]; then
  (cd "$ROOT" && swift build -c release --product hailuo-hook)
fi
BIN="$ROOT/.build/release/hailuo-hook"
[ -x "$BIN" ] || { echo "no $BIN: run with BUILD=1" >&2; exit 1; }

export OUT="${OUT:-/tmp/hailuo-hook-bench/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
# The product seeds tok0..tok9999 -> T0..T9999 like the peers' job, so the
# callback route measures the real path (lookup, state machine, event) and not 404s.
PRODUCT="$BIN serve --config $ROOT/config/hailuo-hook.json --host 127.0.0.1 --port \$PORT --bench-tasks 10000 --log-level warning"
# JOURNAL=1 also runs the product with registry.journal set (a fresh file), to show the journal's cost.
EXTRA=()
if [ "${JOURNAL:-1}" = 1 ]; then
  JFILE="$OUT/journal.log"
  EXTRA=(cmd "rm -f $JFILE; $PRODUCT --journal $JFILE" hailuo-hook+journal)
fi
"$PEERS/bench.sh" ${PEER_LIST:-hummingbird flyingfox nginx} cmd "$PRODUCT" hailuo-hook "${EXTRA[@]}" | tee "$OUT/bench.out"

echo
echo "## hailuo-hook against the peers (same run: $OUT)"
awk -F'\t' '
  NR == 1 { next }
  { key = $2 "\t" $3; rps[$1, key] = $4; p99[$1, key] = $7; keys[key] = 1 }
  END {
    printf "| product | route | conns | req/s | p99 | ÷ hummingbird | ÷ flyingfox | ÷ nginx |\n|---|---|---:|---:|---:|---:|---:|---:|\n"
    split("hailuo-hook hailuo-hook+journal", products, " ")
    for (p = 1; p <= 2; p++) for (k in keys) {
      split(k, part, "\t")
      mine = rps[products[p], k]
      if (mine == "") continue
      line = sprintf("| %s | %s | %s | %.0f | %s |", products[p], part[1], part[2], mine, p99[products[p], k])
      n = split("hummingbird flyingfox nginx", peers, " ")
      for (i = 1; i <= n; i++) {
        other = rps[peers[i], k]
        line = line (other > 0 ? sprintf(" %.2f× |", mine / other) : " — |")
      }
      print line
    }
  }' "$OUT/summary.tsv" > "$OUT/ratios.md"
head -n 2 "$OUT/ratios.md"; tail -n +3 "$OUT/ratios.md" | sort -t'|' -k2,2 -k3,3 -k4,4n
echo
echo "Targets (DESIGN.md): callback ≥ 2.5× hummingbird; healthz ≥ 0.8× nginx; p99 ≤ 1.5 ms at 64, ≤ 5 ms at 256."
