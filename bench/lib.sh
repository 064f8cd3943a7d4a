# Shared by bench/tls.sh and bench/scale.sh (sourced; ROOT set by the caller).

# Exits with a line naming the first tool that is missing.
need() {
  local tool
  for tool in "$@"; do command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }; done
}

# The release binary, built first unless BUILD=0.
release_binary() {
  if [ "${BUILD:-1}" = 1 ]; then (cd "$ROOT" && swift build -c release --product hailuo-hook >&2); fi
  echo "$ROOT/.build/release/hailuo-hook"
}

# The value after KEY in a wrk output file ("Requests/sec:", "99%", ...).
field() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }

# CPU ticks (user + system) used so far by the given process ids.
cpu_ticks() {
  local total=0 p
  for p in "$@"; do
    total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')))
  done
  echo "$total"
}

# The process ids of process group $1.
group_pids() { ps -e -o pid=,pgid= | awk -v g="$1" '$2 == g { print $1 }'; }
