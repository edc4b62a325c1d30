"""Error handlers: JSON for API calls, a page for everything else."""

import logging

from flask import current_app, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.extensions import RateLimitExceeded
from app.services.errors import DomainError

log = logging.getLogger(__name__)

# Seconds a client is asked to wait after the database was too busy or out of reach.
DATABASE_RETRY_AFTER_SECONDS = 5


def wants_json() -> bool:
    if request.is_json or request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, message: str, code: str, **details):
    message = str(message)  # a lazily translated message, read in this request's language
    if wants_json():
        return jsonify(error=message, code=code, **details), status
    return render_template("errors/error.html", status=status, message=message), status


def _size(limit: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit >= factor and limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"


def _translated_description(error: HTTPException) -> str:
    """Werkzeug's own wording of the common errors, in the request's language; our own messages as given."""
    if error.description != type(error).description:
        return error.description
    return {
        400: _("The request could not be understood. Nothing was changed."),
        403: _("You are not allowed to see this page."),
        404: _("This page does not exist. Check the address, or start again from the events."),
        405: _("This page cannot be used that way."),
        409: _("That conflicts with a change made in the meantime. Nothing was changed."),
    }.get(error.code, error.description)


def register(app):
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return error_response(
            400,
            _(
                "The form has expired or is missing its security token (%(reason)s). Please try again.",
                reason=error.description,
            ),
            "csrf",
        )

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error):
        response = make_response(
            error_response(
                429,
                _("Too many attempts (%(limit)s). Please wait a moment and try again.", limit=error.description),
                "rate_limited",
            )
        )
        response.headers["Retry-After"] = str(error.retry_after)  # when the broken limit's window ends
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if limit:
            message = _("That request is too large (at most %(size)s). Nothing was changed.", size=_size(limit))
        else:
            message = _("That request is too large. Nothing was changed.")
        return error_response(413, message, "too_large")

    @app.errorhandler(DomainError)
    def domain_error(error):
        # Nothing to roll back: a refused unit of work has already (run_unit_of_work owns that).
        return error_response(error.status, error.message, error.code, **error.details)

    @app.errorhandler(HTTPException)
    def http_error(error):
        code = (error.name or "error").lower().replace(" ", "_")
        return error_response(error.code, _translated_description(error), code)

    # The database's troubles are the site's state, not a bug in the request: 503 with Retry-After.
    # (A unit of work already turned lock conflicts into SeatsBusy and a lost commit into
    # CommitOutcomeUnknown; what reaches here failed before anything was written.)
    @app.errorhandler(sa_exc.TimeoutError)
    def database_busy(error):
        log.warning("no database connection free in time: %s", error)
        message = _("We are very busy right now. Nothing was changed; please try again in a few seconds.")
        return _retry_later(error_response(503, message, "busy"))

    @app.errorhandler(sa_exc.OperationalError)
    def database_unreachable(error):
        log.error("database unavailable: %s", error)
        message = _("We cannot reach our database right now. Nothing was changed; please try again in a moment.")
        return _retry_later(error_response(503, message, "database_unavailable"))

    @app.errorhandler(500)
    def internal_error(error):
        # A failed unit of work rolled back in run_unit_of_work; the request's session is removed
        # (and so rolled back) at teardown.
        return error_response(
            500, _("Something went wrong on our side. Nothing was charged; please try again."), "server_error"
        )


def _retry_later(answer):
    response = make_response(answer)
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response
