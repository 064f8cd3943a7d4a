#!/usr/bin/env bash
# HTTPS callbacks and healthz: hailuo-hook on TLS against nginx on TLS, in ONE run,
# with the same wrk parameters and pinning as ../shared/peers/bench.sh (server on
# CPU 0, wrk on CPU 1, one nginx worker), plus hailuo-hook on plain HTTP to show
# what TLS costs. Keep-alive connections: the handshakes are amortised, as for a
# webhook upstream that keeps its connections.
#
#   bench/tls.sh                 # builds release first
#   BUILD=0 DURATION=10s bench/tls.sh
#
# Needs wrk (with OpenSSL, as Debian's is), nginx, curl, openssl.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS_DIR:-$ROOT/../shared/peers}"
PORT="${PORT:-8443}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-3s}"
CONNS="${CONNS:-64}"
SERVER_CPUS="${SERVER_CPUS:-0}"
WRK_CPUS="${WRK_CPUS:-1}"
OUT="${OUT:-/tmp/hailuo-hook-bench-tls/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
. "$ROOT/bench/lib.sh"
need wrk nginx curl openssl
BIN=$(release_binary)

sh "$ROOT/Tests/tls/make-certs.sh" "$OUT/certs"
CERT="$OUT/certs/server.pem" KEY="$OUT/certs/server.key" CA="$OUT/certs/ca.pem"

# nginx on TLS: the peers' fixed answers (nginx/nginx.conf), with the same
# protocols and AEAD ciphers as hailuo-hook, session cache on.
mkdir -p "$OUT/nginx"
cat > "$OUT/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; use epoll; multi_accept on; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $OUT/nginx/client_body;
    proxy_temp_path $OUT/nginx/proxy;
    fastcgi_temp_path $OUT/nginx/fastcgi;
    uwsgi_temp_path $OUT/nginx/uwsgi;
    scgi_temp_path $OUT/nginx/scgi;
    client_body_buffer_size 64k;
    default_type application/json;
    server {
        listen 127.0.0.1:$PORT ssl reuseport backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
        ssl_session_cache shared:SSL:10m;
        location = /healthz { return 200 '{"status":"ok"}'; }
        location ~ ^/v1/callbacks/[^/]+\$ { return 200 '{"status":"success"}'; }
        location / { return 404; }
    }
}
CONF

PRODUCT="$BIN serve --config $ROOT/config/hailuo-hook.json --host 127.0.0.1 --port $PORT --bench-tasks 10000 --log-level warning"
declare -A CMD SCHEME
CMD[nginx-tls]="nginx -p $OUT/nginx -c $OUT/nginx/nginx.conf"; SCHEME[nginx-tls]=https
CMD[hailuo-hook-tls]="HAILUO_HOOK_TLS_CERT=$CERT HAILUO_HOOK_TLS_KEY=$KEY $PRODUCT"; SCHEME[hailuo-hook-tls]=https
CMD[hailuo-hook-plain]="$PRODUCT"; SCHEME[hailuo-hook-plain]=http
ORDER=(${SERVERS:-nginx-tls hailuo-hook-tls hailuo-hook-plain})

SUMMARY="$OUT/summary.tsv"
printf 'server\troute\tconns\treq_s\tp50\tp99\tcpu_pct\n' > "$SUMMARY"

for name in "${ORDER[@]}"; do
  url="${SCHEME[$name]}://127.0.0.1:$PORT"
  setsid taskset -c "$SERVER_CPUS" bash -c "${CMD[$name]}" > "$OUT/$name.log" 2>&1 < /dev/null &
  pgid=$!
  for _ in $(seq 100); do curl -sf --cacert "$CA" "$url/healthz" > /dev/null && break; sleep 0.1; done
  curl -sf --cacert "$CA" "$url/healthz" > /dev/null || { echo "$name did not start: $(tail -3 "$OUT/$name.log")" >&2; kill -- -"$pgid"; exit 1; }
  for route in callback healthz; do
    if [ "$route" = callback ]; then script=(-s "$PEERS/wrk/callback.lua"); target="$url"; else script=(); target="$url/healthz"; fi
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"$WARMUP" "${script[@]}" "$target" > /dev/null 2>&1
    f="$OUT/$name.$route.txt"
    c0=$(cpu_ticks $(group_pids "$pgid"))
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${script[@]}" "$target" > "$f" 2>&1
    c1=$(cpu_ticks $(group_pids "$pgid"))
    cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" -v s="${DURATION%s}" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / s }')
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$f")
    [ -z "$non2xx" ] || echo "warning: $name $route: $non2xx non-2xx answers" >&2
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$route" "$CONNS" "$(field Requests/sec: "$f")" "$(field 50% "$f")" "$(field 99% "$f")" "$cpu" >> "$SUMMARY"
    echo "$name $route c$CONNS: $(field Requests/sec: "$f") req/s, p99 $(field 99% "$f"), server CPU $cpu%" >&2
  done
  kill -TERM -- -"$pgid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 -- -"$pgid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- -"$pgid" 2>/dev/null || true
  sleep 1
done

echo
echo "## HTTPS, keep-alive, wrk -t1 -c$CONNS -d$DURATION (outputs: $OUT)"
awk -F'\t' '
  NR == 1 { next }
  { rps[$1, $2] = $4; p99[$1, $2] = $6; cpu[$1, $2] = $7; seen[$1] = 1; order[++n] = $1 "\t" $2 }
  END {
    print "| server | route | req/s | p99 | server CPU | ÷ nginx-tls |"
    print "|---|---|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      split(order[i], k, "\t")
      ref = rps["nginx-tls", k[2]]
      printf "| %s | %s | %.0f | %s | %s%% | %s |\n", k[1], k[2], rps[k[1], k[2]], p99[k[1], k[2]], cpu[k[1], k[2]], (ref > 0 ? sprintf("%.2f×", rps[k[1], k[2]] / ref) : "—")
    }
  }' "$SUMMARY" | tee "$OUT/table.md"
