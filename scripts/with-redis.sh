#!/usr/bin/env bash
# Run a command with a real Redis reachable at $REDIS_URL.
#   1. REDIS_URL already set: use it as is.
#   2. else 127.0.0.1:6379 answers PING: use it.
#   3. else start redis-server from PATH on a free port for this run (installing
#      Debian's redis-server first when it is missing and we are root), and stop it after.
set -euo pipefail

say() { printf '[with-redis] %s\n' "$*" >&2; }

answers_ping() {  # host port
  local reply=""
  { exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3<&- 3>&-
  [[ "$reply" == +PONG* ]]
}

if [[ -n "${REDIS_URL:-}" ]]; then
  say "using REDIS_URL=$REDIS_URL (set by the caller)"
  exec "$@"
fi

if answers_ping 127.0.0.1 "${WITH_REDIS_DEFAULT_PORT:-6379}"; then
  export REDIS_URL="redis://127.0.0.1:${WITH_REDIS_DEFAULT_PORT:-6379}/0"
  say "using the Redis that answers on 127.0.0.1:6379"
  exec "$@"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    say "no Redis found: installing Debian's redis-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    say "no Redis answers on 127.0.0.1:6379 and redis-server is not installed;"
    say "install it (apt-get install redis-server) or set REDIS_URL"
    exit 1
  fi
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize no --logfile "$dir/redis.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do answers_ping 127.0.0.1 "$port" && break; sleep 0.1; done
answers_ping 127.0.0.1 "$port" || { say "redis-server did not start"; cat "$dir/redis.log" >&2; exit 1; }
export REDIS_URL="redis://127.0.0.1:$port/0"
say "started a private redis-server for this run at $REDIS_URL (stopped afterwards)"
"$@"
