"""Health endpoints for process supervisors and load balancers."""
from flask import jsonify


def register(app):
    @app.get("/livez")
    def livez():
        """The process is up (no dependency checks: that is /healthz's job)."""
        return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}

    @app.get("/healthz")
    def healthz():
        """Database, migrations, Redis, scheduler, workers and queue: 200 when all are healthy, else 503."""
        from app.services import health

        report = health.report()
        response = jsonify(report)
        response.status_code = 200 if report["healthy"] else 503
        response.headers["Cache-Control"] = "no-store"
        return response
