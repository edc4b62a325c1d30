from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app import limits
from app.auth import bp
from app.auth.forms import LoginForm, RegistrationForm
from app.auth.safety import safe_next_url
from app.services import accounts
from app.services.errors import DomainError


def home_for(user):
    if user.is_admin:
        return url_for("admin.dashboard")
    return url_for("checkin.index") if user.is_staff else url_for("booking.events")


@bp.route("/register", methods=["GET", "POST"])
@limits.apply(limits.register)
def register():
    """Create a buyer account and log it in."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = RegistrationForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.email.data, form.name.data, form.password.data)
        except DomainError as error:
            form.email.errors.append(error.message)
        else:
            login_user(user)
            flash(f"Welcome to StagePass, {user.name}!", "success")
            return redirect(url_for("booking.events"))
    return render_template("auth/register.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limits.apply(limits.login)
def login():
    """Log in with email and password; 'remember me' keeps the session across browser restarts."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is None:
            form.password.errors.append("Wrong email or password.")
        else:
            login_user(user, remember=form.remember_me.data)
            flash(f"Logged in as {user.email}.", "success")
            return redirect(safe_next_url(form.next.data) or home_for(user))
    return render_template("auth/login.html", form=form), 400 if form.errors else 200


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out (a POST with a CSRF token, so no other site can log you out)."""
    logout_user()
    flash("You have been logged out.", "info")
    return redirect(url_for("booking.events"))
