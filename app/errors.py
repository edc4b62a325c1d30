"""Error handlers: JSON for API calls, a page for everything else."""

from flask import current_app, jsonify, make_response, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import limits
from app.services.errors import DomainError


def wants_json() -> bool:
    if request.is_json or request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, message: str, code: str, **details):
    if wants_json():
        return jsonify(error=message, code=code, **details), status
    return render_template("errors/error.html", status=status, message=message), status


def _size(limit: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit >= factor and limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"


def register(app):
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return error_response(
            400,
            f"The form has expired or is missing its security token ({error.description}). Please try again.",
            "csrf",
        )

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error):
        response = make_response(
            error_response(
                429, f"Too many attempts ({error.description}). Please wait a moment and try again.", "rate_limited"
            )
        )
        response.headers["Retry-After"] = str(limits.seconds_until_retry())
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        limit_text = f" (at most {_size(limit)})" if limit else ""
        return error_response(413, f"That request is too large{limit_text}. Nothing was changed.", "too_large")

    @app.errorhandler(DomainError)
    def domain_error(error):
        # Nothing to roll back: a refused unit of work has already (run_unit_of_work owns that).
        return error_response(error.status, error.message, error.code, **error.details)

    @app.errorhandler(HTTPException)
    def http_error(error):
        code = (error.name or "error").lower().replace(" ", "_")
        return error_response(error.code, error.description, code)

    @app.errorhandler(500)
    def internal_error(error):
        # A failed unit of work rolled back in run_unit_of_work; the request's session is removed
        # (and so rolled back) at teardown.
        return error_response(
            500, "Something went wrong on our side. Nothing was charged; please try again.", "server_error"
        )
