"""Admin: an order's emails, and sending its confirmation again."""

from flask import flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.admin import bp
from app.admin.forms import ConfirmForm
from app.auth.decorators import admin_required
from app.services import mail, reports
from app.services.errors import DomainError


@bp.route("/orders/<reference>/resend-confirmation", methods=["POST"])
@admin_required
def order_resend_confirmation(reference):
    """Queue the order's confirmation email again: a new email, sent by the worker."""
    order = reports.find_order(reference)
    if ConfirmForm().validate_on_submit():
        try:
            email = mail.resend_order_confirmation(order, actor=current_user)
        except DomainError as error:
            flash(_("Not sent: %(reason)s", reason=error.message), "error")
        else:
            flash(_("The confirmation is on its way to %(address)s.", address=email.recipient), "success")
    return redirect(url_for("admin.order_detail", reference=order.reference))
