"""Admin: users — list and search, create, edit (name, email, password, admin flag), delete."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.admin import bp
from app.admin.forms import ConfirmForm, UserForm
from app.admin.listing import page_of
from app.auth.decorators import admin_required
from app.extensions import db
from app.models import User
from app.services import accounts
from app.services.errors import DomainError, NotFound

USERS_PER_PAGE = 50


def user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


@bp.route("/users")
@admin_required
def users():
    """All accounts, searched by name or email."""
    search = request.args.get("q", "").strip()
    page = page_of(accounts.search_users(search), USERS_PER_PAGE)
    return render_template("admin/users.html", page=page, search=search)


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def user_new():
    """Create an account (a buyer, or another admin)."""
    form = UserForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(
                form.email.data,
                form.name.data,
                form.password.data,
                form.is_admin.data,
                actor=current_user,
                is_staff=form.is_staff.data,
            )
        except DomainError as error:
            form.email.errors.append(error.message)
        else:
            flash(f"Created {user.email}.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=None), 400 if form.errors else 200


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
@admin_required
def user_edit(user_id):
    """Edit an account's name, email, password, admin or staff flag (never your own admin flag)."""
    user = user_or_404(user_id)
    form = UserForm(obj=user, user=user)
    if form.validate_on_submit():
        try:
            accounts.update_user(
                user,
                acting_admin=current_user,
                name=form.name.data,
                email=form.email.data,
                is_admin=form.is_admin.data,
                is_staff=form.is_staff.data,
                password=form.password.data or None,
            )
        except DomainError as error:
            form.form_errors.append(error.message)
        else:
            flash(f"Saved {user.email}.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=user), 400 if form.errors else 200


@bp.route("/users/<int:user_id>/delete", methods=["GET", "POST"])
@admin_required
def user_delete(user_id):
    """Delete an account that has never ordered, after confirmation."""
    user = user_or_404(user_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        email = user.email
        try:
            accounts.delete_user(user, acting_admin=current_user)
        except DomainError as error:
            flash(f"Not deleted: {error.message}", "error")
            return redirect(url_for("admin.user_edit", user_id=user_id))
        flash(f"Deleted {email}.", "success")
        return redirect(url_for("admin.users"))
    return render_template(
        "admin/confirm.html",
        form=form,
        title=f"Delete {user.email}?",
        lines=[
            "The account is removed and can no longer log in.",
            "Accounts that have ever ordered are kept, so their tickets, payments and refunds stay on record.",
        ],
        submit_label="Delete the account",
        back_url=url_for("admin.user_edit", user_id=user.id),
    )
