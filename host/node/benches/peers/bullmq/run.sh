#!/usr/bin/env bash
# BullMQ peer of `just bench`: installs bullmq (npm) when missing, starts a redis-server with
# jobhost's settings (AOF everysec, no RDB) on a free port, runs bench.mjs, stops the server.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "bullmq peer: node is not installed (apt-get install nodejs npm)" >&2; exit 1; }
[ -d node_modules/bullmq ] || npm install --silent --no-audit --no-fund >/dev/null
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync everysec \
    --save "" --daemonize no --logfile "$dir/redis.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
node bench.mjs "$port" "$@"
