"""Choosing the language: the footer switcher (anyone) and the account settings page."""

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app import i18n
from app.auth import bp
from app.auth.forms import AccountLanguageForm
from app.auth.safety import safe_next_url
from app.services.transactions import run_unit_of_work


def remember_language(code: str | None) -> None:
    """Keep `code` (None: follow the browser) for this visitor: on the account, else in the session."""
    if current_user.is_authenticated:

        def work():
            current_user.language = code

        run_unit_of_work(work)
    if code:
        session[i18n.SESSION_KEY] = code
    else:
        session.pop(i18n.SESSION_KEY, None)


@bp.route("/language", methods=["POST"])
def set_language():
    """The footer switcher: remember the chosen language and go back to the page it was chosen on."""
    code = i18n.known_language(request.form.get("language"))
    back = safe_next_url(request.form.get("next")) or url_for("booking.events")
    if code is None:
        flash(_("That language is not available."), "error")
        return redirect(back)
    remember_language(code)
    with force_locale(code):
        flash(_("The pages are now shown in %(language)s.", language=i18n.LANGUAGES[code]), "success")
    return redirect(back)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """Account settings: the language of the pages (and of the emails that follow them)."""
    form = AccountLanguageForm(language=current_user.language or "")
    if form.validate_on_submit():
        remember_language(form.language.data or None)
        flash(_("Your settings were saved."), "success")
        return redirect(url_for("auth.account"))
    return render_template("auth/account.html", form=form), 400 if form.errors else 200
