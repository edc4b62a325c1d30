"""gunicorn settings for StagePass: `gunicorn -c gunicorn.conf.py wsgi:app`.

gevent workers: an open seat-map stream is a parked greenlet, so one worker holds a thousand of
them and plain requests are not starved. Measured with scripts/bench/streams.py (500 streams,
2026-12-02): gevent opened all in 1.0 s and delivered every change (p95 50 ms) while /livez
answered in 2.5 ms; gthread with 2x256 threads had 8 streams still unopened after 61 s and
delivered three times slower (p95 152 ms). See docs/benchmarks.md.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
threads = int(os.environ.get("GUNICORN_THREADS", "32"))  # gthread only
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))  # seconds an idle client connection stays open
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
# gunicorn's control socket defaults to one path per user: a second server on this host (N app
# servers behind nginx) would take it over from the first. We do not use it.
control_socket_disable = True
