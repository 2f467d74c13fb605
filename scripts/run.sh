#!/usr/bin/env bash
# The README's run command: builds Tappa, starts a private redis-server on
# loopback (its own port and data directory under the build tree; append-only
# file fsynced every second, no eviction) and tappa-server with the example
# ruleset, then prints how to call it. Ctrl-C stops both.
#
# Environment: TAPPA_GRPC_PORT (default 50051), TAPPA_METRICS_PORT (9464),
# TAPPA_REDIS_PORT (6390), TAPPA_RULES (rules/examples/retail.yaml).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
BUILD="${TAPPA_BUILD_DIR:-$ROOT/build}"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "${TAPPA_JOBS:-2}" --target tappa-server tappactl

GRPC_PORT="${TAPPA_GRPC_PORT:-50051}"
METRICS_PORT="${TAPPA_METRICS_PORT:-9464}"
REDIS_PORT="${TAPPA_REDIS_PORT:-6390}"
RULES="${TAPPA_RULES:-rules/examples/retail.yaml}"
DATA="$BUILD/run/redis"
mkdir -p "$DATA"

"$BUILD/tools/tappactl/tappactl" rules check "$RULES"

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DATA" \
  --appendonly yes --appendfsync everysec --save "" \
  --maxmemory-policy noeviction --daemonize no --logfile "$DATA/redis.log" &
REDIS_PID=$!
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.05
done

cat <<MSG

Tappa is starting: gRPC on 127.0.0.1:$GRPC_PORT, metrics on
http://127.0.0.1:$METRICS_PORT/metrics, Redis on 127.0.0.1:$REDIS_PORT (data in $DATA).

Walk the example journey from another shell:
  export TAPPA_SERVER=127.0.0.1:$GRPC_PORT T=$BUILD/tools/tappactl/tappactl
  \$T track ada post_view --channel social --prop source=instagram
  \$T nba ada --channel web --placement web.home_hero --context referrer=instagram
  \$T track ada review_read --channel web
  \$T track ada purchase --channel web
  \$T track ada newsletter_subscribe --channel email
  \$T track ada ugc_share --channel social --prop brand_tagged=true
  \$T contact ada
  \$T forget ada

MSG
"$BUILD/server/tappa-server" --rules "$RULES" \
  --redis_url "redis://127.0.0.1:$REDIS_PORT" \
  --grpc_listen "127.0.0.1:$GRPC_PORT" --metrics_listen "127.0.0.1:$METRICS_PORT" &
SERVER_PID=$!
wait "$SERVER_PID"
