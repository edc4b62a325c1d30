#!/usr/bin/env bash
# Run the HTTP benchmarks against gunicorn on a throwaway MariaDB database, load from this process
# on 127.0.0.1 only, bounded in time.
# Usage: scripts/bench/run.sh [throughput|rush|streams|rush2|simulate|generation|pdf|cancellation|profile|checkin|queue|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:-all}
DB=stagepass_bench_$$
# BENCH_DB_SOCKET=/run/mysqld/mysqld.sock: the servers reach MariaDB over its Unix socket, not TCP.
export DATABASE_URL="mysql+pymysql://root@127.0.0.1/${DB}?charset=utf8mb4${BENCH_DB_SOCKET:+&unix_socket=$BENCH_DB_SOCKET}"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/9}
export STAGEPASS_ENV=production SECRET_KEY=bench-only-secret FLASK_APP=wsgi
export TICKET_SIGNING_KEYS=${TICKET_SIGNING_KEYS:-bench:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA}
export DB_POOL_SIZE=${DB_POOL_SIZE:-16} DB_MAX_OVERFLOW=${DB_MAX_OVERFLOW:-16}
# All load comes from one IP and a few accounts: the limits stay on (their Redis counting is part of
# every request's cost) but high enough never to refuse the benchmark.
for limit in LOGIN_PER_IP LOGIN_PER_ACCOUNT REGISTER_PER_IP HOLD_PER_USER HOLD_PER_IP PAY_PER_USER PAY_PER_IP CHECKIN_PER_USER; do
  export "RATELIMIT_$limit=1000000 per minute"
done
if [[ $what == queue ]]; then
  # Every bench buyer comes from 127.0.0.1: no cap on waiting-room places per IP; thousands of
  # buyers keep a connection each, more than gevent's default 1,000 per worker.
  export WAITING_ROOM_PLACES_PER_IP=0 GUNICORN_WORKER_CONNECTIONS=${GUNICORN_WORKER_CONNECTIONS:-4000}
  # In production nginx keeps each buyer's connection (75 s) while the page polls; without it
  # every poll would open a new TCP connection here, and 5,000 of them overflow the listen queue.
  export GUNICORN_KEEPALIVE=${GUNICORN_KEEPALIVE:-75}
fi
BIN=.venv/bin
GUNICORN_ARGS=${GUNICORN_ARGS:-"-c gunicorn.conf.py"}
export GUNICORN_ACCESS_LOG=/dev/null
pids=()
status=0
sql() { mariadb -uroot -h127.0.0.1 -N -e "$1"; }
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  sql "DROP DATABASE IF EXISTS \`${DB}\`"
  rm -f "/tmp/stagepass-bench-simulate-$$.jsonl"
}
trap cleanup EXIT
sql "CREATE DATABASE \`${DB}\` CHARACTER SET utf8mb4"
$BIN/flask db upgrade >/dev/null 2>&1
# BENCH_PORT (default 8100) and the next port: another run on this machine may hold the default.
PORT=${BENCH_PORT:-8100}
PORT2=$((PORT + 1))
serve() {  # serve PORT
  if curl -fs "http://127.0.0.1:$1/livez" >/dev/null 2>&1; then
    echo "port $1 already serves something (another benchmark?): set BENCH_PORT" >&2; exit 1
  fi
  : > "/tmp/stagepass-bench-$1.log"
  $BIN/gunicorn $GUNICORN_ARGS --bind "127.0.0.1:$1" --error-logfile "/tmp/stagepass-bench-$1.log" wsgi:app &
  pids+=($!)
  for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$1/livez" >/dev/null && return; sleep 0.2; done
  echo "server on $1 did not start" >&2; exit 1
}
median_of_rounds() {  # median_of_rounds FILE: the median of each figure over the --json lines in FILE
  $BIN/python -c '
import json, statistics, sys
rounds = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
figures = ("succeeded", "conflicts", "errors", "wall_s", "p50_ms", "p95_ms", "max_ms", "wait_p50_ms", "wait_p95_ms", "db_p50_ms", "db_p95_ms")
print(json.dumps({"median_of_rounds": len(rounds), **{name: statistics.median(r[name] for r in rounds) for name in figures}}))
' "$1"
}
serve $PORT
echo "# gunicorn $GUNICORN_ARGS, MariaDB, $(nproc) cores, $(date -u +%FT%TZ)"
case $what in
  throughput|all) $BIN/python scripts/bench/http_bench.py throughput --base-url http://127.0.0.1:$PORT --seconds "${SECONDS_PER_PHASE:-8}" --rounds "${ROUNDS:-3}" || status=1 ;;&
  rush|all) $BIN/python scripts/bench/http_bench.py rush --base-url http://127.0.0.1:$PORT --buyers "${BUYERS:-1000}" --rounds "${ROUNDS:-3}" --seconds 120 || status=1 ;;&
  streams|all) $BIN/python scripts/bench/streams.py --base-url http://127.0.0.1:$PORT --streams "${STREAMS:-500}" ;;&
  simulate|all)
    seat=$($BIN/python -c "from scripts.bench import fixtures as f; app = f.make_app(); print(f.seat_ids(app, f.big_event(app, 'Simulate'))[0])")
    rounds=/tmp/stagepass-bench-simulate-$$.jsonl
    : > "$rounds"
    failed=0
    for _ in $(seq 1 "${ROUNDS:-5}"); do
      $BIN/flask simulate-booking "$seat" --users "${USERS:-1000}" ${CONNECTIONS:+--connections "$CONNECTIONS"} --reset --json | tail -1 | tee -a "$rounds" \
        || failed=$((failed + 1))
    done
    median_of_rounds "$rounds"
    if ((failed)); then echo "# simulate: $failed of ${ROUNDS:-5} rounds failed" >&2; status=1; fi ;;&
  generation|all) $BIN/python scripts/bench/generation.py --runs "${RUNS:-7}" ;;&
  checkin|all) $BIN/python scripts/bench/http_bench.py checkin --base-url http://127.0.0.1:$PORT --seconds 60 --rounds "${ROUNDS:-3}" || status=1 ;;&
  pdf|all) $BIN/python scripts/bench/pdf.py --runs "${PDF_RUNS:-21}" ;;&
  cancellation|all) $BIN/python scripts/bench/cancellation.py --orders "${ORDERS:-200}" || status=1 ;;&
  profile) $BIN/python scripts/bench/profile_hold.py --holds "${HOLDS:-300}" ${PROFILE_ARGS:---no-profile --limits} ;;&
  queue)
    serve $PORT2
    $BIN/python scripts/bench/queue_bench.py --base-url http://127.0.0.1:$PORT --base-url http://127.0.0.1:$PORT2 \
      --buyers "${BUYERS:-5000}" --arrival-seconds "${ARRIVAL_SECONDS:-10}" --seconds "${QUEUE_SECONDS:-180}" \
      --modes "${MODES:-on,off}" ${QUEUE_TRACE:+--trace "$QUEUE_TRACE"} || status=1 ;;
  rush2|all) serve $PORT2; $BIN/python scripts/bench/http_bench.py rush --base-url http://127.0.0.1:$PORT --base-url http://127.0.0.1:$PORT2 --buyers "${BUYERS:-1000}" --rounds "${ROUNDS:-3}" --seconds 120 || status=1 ;;
esac
exit $status
