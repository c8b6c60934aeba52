#!/usr/bin/env bash
# Before/after on one machine: the service from two checkouts, alternated under wrk, with the server's CPU per request.
#
#   bench/ab_trees.sh OLD_TREE NEW_TREE [CASE] [ROUNDS] [SECONDS]
#
# CASE: redis-id (default), near-id, memory-id or miss-id, configured like `make bench`'s services (one uvicorn
# worker, SQLite with the sample users, Redis at $REDIS_URL or redis://127.0.0.1:6379/0). Each tree runs its own
# `.venv/bin/python -m app` (`make install` in each first), e.g. an old commit:
#   git worktree add --detach /tmp/old e91473d && (cd /tmp/old && make install)
#   bench/ab_trees.sh /tmp/old . near-id
# WRK_THREADS (default 1; `make bench` uses 2) sets wrk's threads.
# Prints, per round and tree: req/s, p99 and the server process's CPU µs per request (user + system, all threads),
# which moves less than req/s when the machine is shared.
set -euo pipefail
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd); case_name=${3:-redis-id}; rounds=${4:-3}; seconds=${5:-5}
redis=${REDIS_URL:-redis://127.0.0.1:6379/0}; threads=${WRK_THREADS:-1}
case $case_name in
  redis-id) extra=(REDIS_URL="$redis" CACHE_NEAR_ENABLED=false CACHE_TTL_SECONDS=3600) ;;
  near-id) extra=(REDIS_URL="$redis" CACHE_NEAR_ENABLED=true CACHE_TTL_SECONDS=3600) ;;
  memory-id) extra=() ;;
  miss-id) extra=(CACHE_ENABLED=false) ;;
  *) echo "unknown case: $case_name (redis-id, near-id, memory-id, miss-id)" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
lua="$(cd "$(dirname "$0")" && pwd)/wrk/users.lua"
declare -A port server
for tree in old new; do
  dir=${!tree}; port[$tree]=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$dir" && exec env HOST=127.0.0.1 PORT="${port[$tree]}" WORKERS=1 SEED_SAMPLE_USERS=true LOG_LEVEL=WARNING \
    DATABASE_URL="sqlite:///$work/$tree.db" CACHE_PREFIX="ab-$tree-$$" "${extra[@]}" .venv/bin/python -m app \
    >"$work/$tree.log" 2>&1) &
  server[$tree]=$!; pids+=($!)
done
for tree in old new; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:${port[$tree]}/users/1" >/dev/null && break; sleep 0.2; done
  wrk -t"$threads" -c32 -d2s -s "$lua" "http://127.0.0.1:${port[$tree]}" -- id >/dev/null  # warm-up
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # clock ticks (1/100 s)
for round in $(seq "$rounds"); do
  for tree in old new; do
    pid=${server[$tree]}; before=$(cpu "$pid")
    out=$(wrk -t"$threads" -c32 -d"${seconds}s" --latency -s "$lua" "http://127.0.0.1:${port[$tree]}" -- id)
    after=$(cpu "$pid"); requests=$(grep -o '[0-9]* requests in' <<<"$out" | cut -d' ' -f1)
    printf '%s round %s %s: %s req/s, p99 %s, %s µs CPU per request %s\n' "$case_name" "$round" "$tree" \
      "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
      "$(( (after - before) * 10000000 / requests / 1000 ))" "$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)"
  done
done
