#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests: a temporary folder, a free loopback port,
# trust authentication, fsync off; the server runs as a non-root user (postgres, when this
# runs as root: initdb refuses root).
#   cluster.sh start           prints the URL, then the folder, one a line
#   cluster.sh stop FOLDER     stops it (immediate) and removes the folder
#   cluster.sh restart FOLDER  stops it and starts it again on the same port
#   cluster.sh down FOLDER     stops it, keeping the folder (up FOLDER starts it again)
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && [ -x "$bin/initdb" ] || { echo "no PostgreSQL server here (apt-get install postgresql)" >&2; exit 3; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
up() {
  as_owner "$bin/pg_ctl" -D "$1/data" -l "$1/log" -w -t 30 \
    -o "-p $(cat "$1/port") -k $1 -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=500" start > /dev/null
}
down() { as_owner "$bin/pg_ctl" -D "$1/data" -m immediate -w stop > /dev/null 2>&1 || true; }
case "${1:-start}" in
  start)
    dir=$(mktemp -d /tmp/hailuo-pg-XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' > "$dir/port"
    as_owner "$bin/initdb" -D "$dir/data" -U hailuo --auth=trust -E UTF8 --no-sync > "$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    up "$dir"
    echo "postgresql://hailuo@127.0.0.1:$(cat "$dir/port")/postgres"
    echo "$dir"
    ;;
  stop) down "$2"; rm -rf "$2" ;;
  restart) down "$2"; up "$2" ;;
  down) down "$2" ;;
  up) up "$2" ;;
  *) echo "usage: cluster.sh start | stop FOLDER | restart FOLDER | down FOLDER | up FOLDER" >&2; exit 2 ;;
esac
