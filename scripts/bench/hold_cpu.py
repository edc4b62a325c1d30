"""App CPU of one hold request against one `/livez`, in process (WSGI called directly, real MariaDB
and Redis), interleaved request by request so that both see the same machine.

    DATABASE_URL=mysql+pymysql://root@127.0.0.1/stagepass_prof REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python scripts/bench/hold_cpu.py --requests 900

The database must be migrated and hold no orders of the bench buyers (a fresh one each run). The
app runs with the production config, as under gunicorn (debug mode adds work to every request);
its secrets default to bench-only values, as in run.sh.
Variants, one per request in turn: `hold`, `livez`, and with `--parts` also a hold without CSRF
checking, without rate limits and without the seat-change publish, to see what each costs.
Medians of `time.process_time()` per request; no gunicorn, so no HTTP parsing or gevent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench import fixtures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=900, help="in all, spread over the variants")
    parser.add_argument("--parts", action="store_true", help="also holds without CSRF, limits or publish")
    args = parser.parse_args()
    os.environ.setdefault("STAGEPASS_ENV", "production")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret")
    os.environ.setdefault("TICKET_SIGNING_KEYS", "bench:" + "A" * 43)
    from werkzeug.test import EnvironBuilder

    from app.extensions import limiter
    from app.services import seat_changes

    app = fixtures.make_app()
    app.config.update({f"RATELIMIT_{name}": "1000000 per minute" for name in ("HOLD_PER_USER", "HOLD_PER_IP")})
    variants = ["hold", "livez"] + (["hold_no_csrf", "hold_no_limits", "hold_no_publish"] if args.parts else [])
    limiter.enabled = False
    buyers = [_signed_in(app, email) for email in fixtures.buyers(app, args.requests)]
    wiring = app.extensions[seat_changes._APP_KEY]
    listeners = list(wiring["listeners"])
    livez = EnvironBuilder(path="/livez").get_environ()
    cpu = {variant: [] for variant in variants}
    seats = []
    for index, (cookie, token) in enumerate(buyers):
        variant = variants[index % len(variants)]
        app.config["WTF_CSRF_CHECK_DEFAULT"] = variant != "hold_no_csrf"
        limiter.enabled = variant != "hold_no_limits"
        wiring["listeners"] = [] if variant == "hold_no_publish" else listeners
        if variant == "livez":
            environ = dict(livez)
        else:
            if not seats:
                event_id = fixtures.big_event(app, f"Hold CPU {index}")
                seats = fixtures.seat_ids(app, event_id)
            environ = EnvironBuilder(
                path=f"/api/events/{event_id}/holds",
                method="POST",
                json={"seat_ids": [seats.pop()]},
                headers={"X-CSRFToken": token, "Cookie": cookie},
            ).get_environ()
        started = time.process_time()
        b"".join(app.wsgi_app(environ, _expect_success))
        cpu[variant].append(time.process_time() - started)
    wiring["listeners"] = listeners
    livez_ms = statistics.median(cpu["livez"]) * 1000
    for variant in variants:
        median = statistics.median(cpu[variant]) * 1000
        print(f"{variant:16s} {median:6.3f} ms  ({median / livez_ms:4.1f} x livez, {len(cpu[variant])} requests)")


def _expect_success(status: str, headers, exc_info=None) -> None:
    assert status[:3] in ("200", "201"), status


def _signed_in(app, email: str) -> tuple[str, str]:
    """A buyer's session cookie and CSRF token, from a real log-in."""
    client, token = fixtures.signed_in_test_client(app, email)
    return "; ".join(f"{cookie.key}={cookie.value}" for cookie in client._cookies.values()), token


if __name__ == "__main__":
    main()
