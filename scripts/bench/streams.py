"""Open many seat-map streams on one server, make seat changes, and report push delivery delay
(p50/p95/max) and the server's memory. Load on 127.0.0.1 only; bounded by --changes.

    scripts/bench/run.sh streams      (sets up gunicorn and the database)
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench import fixtures
from scripts.bench.client import Browser, percentile, server_pids


def open_stream(host, port, event_id, on_change, ready):
    """A raw HTTP/1.1 SSE reader (one socket, one thread) that timestamps each change event."""
    sock = socket.create_connection((host, port), timeout=120)
    sock.sendall(
        f"GET /events/{event_id}/stream HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            if b"event: snapshot" in block:
                ready.release()
            elif b"event: change" in block:
                data = block.split(b"data: ", 1)[1]
                on_change(json.loads(data[data.index(b"{") :]), time.perf_counter())


def server_memory_mb(port):
    """Resident memory of the gunicorn processes serving this port (master + workers)."""
    total = 0
    for pid in server_pids(port):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8100")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    host, port = args.base_url.split("//")[1].split(":")
    port = int(port)
    assert host in ("127.0.0.1", "localhost")
    app = fixtures.make_app()
    event_id = fixtures.big_event(app, f"Streams {time.time():.0f}", 20, 20)
    seat_ids = fixtures.seat_ids(app, event_id)
    memory_before = server_memory_mb(port)

    sent_at, received = {}, {}
    lock = threading.Lock()
    ready = threading.Semaphore(0)

    def on_change(change, when):
        with lock:
            received.setdefault(change["version"], []).append(when)

    for _ in range(args.streams):
        threading.Thread(target=open_stream, args=(host, port, event_id, on_change, ready), daemon=True).start()
    opened = time.perf_counter()
    for _ in range(args.streams):
        if not ready.acquire(timeout=60):
            break
    print(f"{args.streams} streams open in {time.perf_counter() - opened:.1f} s", file=sys.stderr, flush=True)

    # While the streams are open, plain requests must still be served promptly.
    probe = Browser(args.base_url)
    probe_latencies = []
    buyer_emails = fixtures.buyers(app, args.changes)
    from app.extensions import db
    from app.models import Event, User
    from app.services import booking, seatmap

    with app.app_context():
        for index in range(args.changes):
            started = time.perf_counter()
            probe.get("/livez")
            probe_latencies.append(time.perf_counter() - started)
            counter_before = seatmap.change_counter(event_id) or 0
            user = db.session.scalar(db.select(User).where(User.email == buyer_emails[index]))
            sent = time.perf_counter()
            booking.hold(user, db.session.get(Event, event_id), [seat_ids[index]])
            sent_at[counter_before + 1] = sent
            time.sleep(0.25)
    time.sleep(2)

    delays = []
    missing = 0
    for version, sent in sent_at.items():
        arrivals = received.get(version, [])
        missing += args.streams - len(arrivals)
        delays.extend((arrival - sent) * 1000 for arrival in arrivals)
    result = {
        "streams": args.streams,
        "changes": args.changes,
        "deliveries": len(delays),
        "missing": missing,
        "delay_p50_ms": round(statistics.median(delays), 1) if delays else None,
        "delay_p95_ms": round(percentile(delays, 0.95), 1) if delays else None,
        "delay_max_ms": round(max(delays), 1) if delays else None,
        "plain_request_p50_ms": round(statistics.median(probe_latencies) * 1000, 1),
        "plain_request_max_ms": round(max(probe_latencies) * 1000, 1),
        "server_rss_mb_before": memory_before,
        "server_rss_mb_with_streams": server_memory_mb(port),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
