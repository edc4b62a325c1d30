"""Seat-map generation for the largest allowed map: median of several runs, statements per run.

DATABASE_URL=mysql+pymysql://root@127.0.0.1/stagepass_bench .venv/bin/python scripts/bench/generation.py --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa

from scripts.bench.fixtures import big_event, make_app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    app = make_app()
    rows, columns = app.config["MAX_SEAT_ROWS"], app.config["MAX_SEAT_COLUMNS"]
    from app.extensions import db

    with app.app_context():
        statements = []
        sa.event.listen(db.engine, "before_cursor_execute", lambda *a, **k: statements.append(1))
        timings = []
        for run in range(args.runs):
            statements.clear()
            started = time.perf_counter()
            big_event(app, f"Generation benchmark {run} {time.time():.0f}", rows, columns)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"database: {db.engine.url.render_as_string(hide_password=True)}")
        print(f"map: {rows} x {columns} = {rows * columns} seats, {args.runs} runs")
        print(
            f"create + generate + publish: median {statistics.median(timings):.1f} ms, "
            f"min {min(timings):.1f} ms, max {max(timings):.1f} ms"
        )
        print(f"SQL statements per event (last run): {len(statements)}")


if __name__ == "__main__":
    main()
