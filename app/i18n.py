"""Languages: which one a request is served in, and the Babel wiring.

The account's choice wins, then the guest's choice kept in the session, then the browser's
Accept-Language, then English. Every string a buyer, admin or staff member reads goes through
gettext (`_` in templates, `gettext` or `lazy_gettext` in Python), so the catalogues under
app/translations/ can translate it.
"""

from flask import current_app, request, session
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.extensions import babel

LANGUAGES = {"en": "English", "de": "Deutsch", "es": "Español"}
SESSION_KEY = "language"

# The stored status codes as a reader sees them; a code missing here is shown as it is.
STATUS_LABELS = {
    "draft": _l("draft"),
    "published": _l("published"),
    "on sale": _l("on sale"),
    "cancelled": _l("cancelled"),
    "available": _l("available"),
    "reserved": _l("on hold"),
    "booked": _l("booked"),
    "pending": _l("pending"),
    "confirmed": _l("confirmed"),
    "failed": _l("failed"),
    "expired": _l("expired"),
    "paid": _l("paid"),
    "refunded": _l("refunded"),
    "charge": _l("charge"),
    "refund": _l("refund"),
    "succeeded": _l("succeeded"),
    "declined": _l("declined"),
    "error": _l("error"),
    "sending": _l("sending"),
    "sent": _l("sent"),
    "card": _l("card"),
    "wallet": _l("wallet"),
}


def N_(text: str) -> str:  # noqa: N802  (gettext's conventional name for a marker)
    """Mark a message kept in English (stored reasons) for the catalogues; `|translated` shows it."""
    return text


def translated(text):
    """A stored English message (a failure or cancellation reason) in the page's language, if known."""
    return gettext(text) if text else text


def known_language(code) -> str | None:
    """`code` if it is one of ours (en, de, es), else None: anything else falls back, never fails."""
    return code if isinstance(code, str) and code in LANGUAGES else None


def select_locale() -> str:
    """The language of this request: the account's, else the guest's, else the browser's, else the default."""
    chosen = known_language(getattr(current_user, "language", None)) if current_user else None
    if chosen:
        return chosen
    if request:
        chosen = known_language(session.get(SESSION_KEY))
        if chosen:
            return chosen
        try:
            best = request.accept_languages.best_match(LANGUAGES)
        except ValueError:  # a forged header werkzeug cannot parse
            best = None
        if best:
            return best
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def status_label(code):
    """The translated label of a status code (`{{ order.status|status_label }}`)."""
    return STATUS_LABELS.get(code, code)


def register(app):
    babel.init_app(app, locale_selector=select_locale)
    app.add_template_global(LANGUAGES, "languages")
    app.add_template_global(get_locale)
    app.add_template_filter(status_label)
    app.add_template_filter(translated)
