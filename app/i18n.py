"""Languages: which one a request is served in, and the Babel wiring.

The account's choice wins, then the browser's Accept-Language, then English. Every string a
buyer, admin or staff member reads goes through gettext (`_` in templates, `gettext` or
`lazy_gettext` in Python), so the catalogues under app/translations/ can translate it.
"""

from flask import current_app, request
from flask_babel import get_locale
from flask_login import current_user

from app.extensions import babel

LANGUAGES = {"en": "English", "de": "Deutsch", "es": "Español"}


def select_locale() -> str:
    """The language of this request: the account's choice, else the browser's, else the default."""
    chosen = getattr(current_user, "language", None) if current_user else None
    if chosen in LANGUAGES:
        return chosen
    if request:
        best = request.accept_languages.best_match(LANGUAGES)
        if best:
            return best
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def register(app):
    babel.init_app(app, locale_selector=select_locale)
    app.add_template_global(LANGUAGES, "languages")
    app.add_template_global(get_locale)
