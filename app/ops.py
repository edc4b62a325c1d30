"""Health endpoints: /livez for load balancers and process supervisors, /healthz for operators.

A load balancer must not use /healthz: it answers 503 when the scheduler, the worker or Redis is
missing, and would take every app server out of rotation while the site still sells.
"""

from flask import jsonify


def register(app):
    @app.get("/livez")
    def livez():
        """The load balancer's check: this process answers (no database, Redis or job checks)."""
        return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}

    @app.get("/healthz")
    def healthz():
        """The operator's full health (database, migrations, Redis, jobs, queue): 200 when all are healthy, else 503."""
        from app.services import health

        report = health.report()
        response = jsonify(report)
        response.status_code = 200 if report["healthy"] else 503
        response.headers["Cache-Control"] = "no-store"
        return response
