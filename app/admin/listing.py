"""What the admin lists share: filters read from the query string, and the page asked for."""

from flask import request, url_for

from app.admin import bp
from app.extensions import db
from app.routing import bounded_int

# Beyond any real list, and small enough that page x per_page stays a valid OFFSET everywhere.
LAST_PAGE = 1_000_000
# The query-string keys a list reads; anything else in the query string is dropped from its links.
FILTER_KEYS = ("q", "status", "event", "action", "actor", "since", "until")


def status_filter(allowed) -> str:
    """The ?status= asked for if it is one of these, else '' (all)."""
    status = request.args.get("status", "")
    return status if status in allowed else ""


def id_filter(name: str) -> int | None:
    """The id in ?<name>=, or None (no filter) when it is missing or could be no row's id."""
    return request.args.get(name, type=bounded_int)


def page_of(query, per_page: int):
    """The ?page= of the query's rows: a bad number gives the first page, one past the end the last."""
    number = min(max(request.args.get("page", 1, type=int), 1), LAST_PAGE)
    page = db.paginate(query, page=number, per_page=per_page, error_out=False)
    if page.page > page.pages > 0:
        page = db.paginate(query, page=page.pages, per_page=per_page, error_out=False)
    return page


@bp.app_template_global()
def page_url(number: int) -> str:
    """This list at another page, with its filters and nothing else from the query string."""
    filters = {key: request.args[key] for key in FILTER_KEYS if request.args.get(key)}
    return url_for(request.endpoint, **request.view_args, **filters, page=number)
