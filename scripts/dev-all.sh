#!/usr/bin/env bash
# Web server, RQ worker and scheduler together, in the foreground; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLASK_APP=wsgi
BIN=.venv/bin
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
$BIN/flask rq-worker & pids+=($!)
$BIN/flask rq-scheduler & pids+=($!)
$BIN/flask run --host 127.0.0.1 --port "${PORT:-5000}" & pids+=($!)
wait -n
