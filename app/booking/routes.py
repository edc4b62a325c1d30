"""Buyer pages: events, the seat map, checkout, confirmation and 'My bookings'."""

from flask import abort, flash, make_response, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app import limits
from app.auth.decorators import redirect_admins
from app.booking import bp
from app.booking.api import visible_event
from app.booking.forms import PaymentForm, ReleaseForm, WalletForm
from app.booking.waiting_room import admission_redirect
from app.models import OrderStatus, utcnow
from app.services import booking, catalog, payments, tickets
from app.services.errors import DomainError


@bp.route("/")
@redirect_admins
def events():
    """Upcoming published events."""
    upcoming = catalog.upcoming_events()
    return render_template(
        "booking/events.html", events=upcoming, seats_left=catalog.seats_left([e.id for e in upcoming])
    )


@bp.route("/events/<int:event_id>")
@redirect_admins
def event_detail(event_id):
    """The event and its live seat map."""
    event = visible_event(event_id)
    if (to_room := admission_redirect(event)) is not None:
        return to_room
    now = utcnow()
    open_order = None
    if current_user.is_authenticated:
        open_order = booking.pending_order_for(current_user, event)
        if open_order is not None and open_order.hold_has_expired(now):
            open_order = None
    return render_template(
        "booking/event.html",
        event=event,
        on_sale=event.is_on_sale(now),
        sells_later=event.sells_later(now),
        open_order=open_order,
    )


def own_order(reference):
    return booking.find_order_for_user(reference, current_user)


@bp.route("/orders/<reference>/checkout", methods=["GET", "POST"])
@limits.apply(limits.pay)
@login_required
@redirect_admins
def checkout(reference):
    """Pay for held seats before the hold runs out."""
    order = booking.expire_if_due(own_order(reference))
    if order.status == OrderStatus.PENDING and (to_room := admission_redirect(order.event)) is not None:
        return to_room
    if order.status != OrderStatus.PENDING:
        if order.status == OrderStatus.EXPIRED:
            flash("Your hold expired and the seats were released. Nothing was charged.", "warning")
        return redirect(url_for("booking.order_detail", reference=order.reference))
    form = PaymentForm()
    if form.validate_on_submit():
        try:
            if form.method.data == payments.WALLET:
                payments.start_wallet(order, user=current_user)
                return redirect(url_for("booking.wallet", reference=order.reference))
            payments.pay_by_card(order, user=current_user, card_number=form.card_number.data)
        except payments.InvalidCard as error:
            form.card_number.errors.append(error.message)
        except DomainError as error:
            return refused(error, order)
        else:
            flash("Payment received. Enjoy the show!", "success")
            return redirect(url_for("booking.order_detail", reference=order.reference))
    return render_checkout(order, form)


def render_checkout(order, form):
    status = 400 if form.errors else 200
    return (
        render_template(
            "booking/checkout.html",
            order=order,
            form=form,
            seconds_left=order.seconds_left(utcnow()),
            test_cards=payments.SANDBOX_CARDS,
            payment_summary=payments.payment_summary(order),
        ),
        status,
    )


def refused(error, order):
    """A payment that did not go through: say why and send the buyer where they can act."""
    if isinstance(error, (payments.PaymentNotAnswered, payments.CardPaymentUnsettled)):
        flash(error.message, "warning")  # the seats are still held: paying again is the way on
        return redirect(url_for("booking.checkout", reference=order.reference))
    flash(error.message, "error")
    if isinstance(error, (payments.PaymentDeclined, payments.PaymentProviderError, booking.HoldExpired)):
        return redirect(url_for("booking.event_detail", event_id=order.event_id))
    return redirect(url_for("booking.order_detail", reference=order.reference))


@bp.route("/orders/<reference>/wallet", methods=["GET", "POST"])
@limits.apply(limits.pay)
@login_required
@redirect_admins
def wallet(reference):
    """The sandbox wallet's approval page (where a real wallet would redirect the buyer)."""
    order = booking.expire_if_due(own_order(reference))
    if order.status == OrderStatus.PENDING and (to_room := admission_redirect(order.event)) is not None:
        return to_room
    if order.status != OrderStatus.PENDING:
        return redirect(url_for("booking.order_detail", reference=order.reference))
    form = WalletForm()
    if form.is_submitted():
        if not form.validate():
            abort(400, " ".join(form.form_errors) or "The form was incomplete; please try again.")
        try:
            payments.confirm_wallet(order, user=current_user, approve=form.approve.data)
        except DomainError as error:
            return refused(error, order)
        flash("Payment received. Enjoy the show!", "success")
        return redirect(url_for("booking.order_detail", reference=order.reference))
    return render_template("booking/wallet.html", order=order, form=form, seconds_left=order.seconds_left(utcnow()))


@bp.route("/orders/<reference>")
@login_required
@redirect_admins
def order_detail(reference):
    """An order: its reference, seats, total and state."""
    order = booking.expire_if_due(own_order(reference))
    return render_template(
        "booking/order.html", order=order, payment_summary=payments.payment_summary(order), release_form=ReleaseForm()
    )


@bp.route("/orders/<reference>/release", methods=["POST"])
@login_required
@redirect_admins
def release(reference):
    """Give up a hold before paying."""
    order = own_order(reference)
    form = ReleaseForm()
    if not form.validate_on_submit():
        abort(400, "The form was incomplete; please try again.")
    try:
        booking.release(order, user=current_user)
    except DomainError as error:
        flash(error.message, "error")
    else:
        flash("Your seats were released.", "info")
    return redirect(url_for("booking.my_bookings"))


@bp.route("/my/bookings")
@login_required
@redirect_admins
def my_bookings():
    """The buyer's orders and their states."""
    return render_template(
        "booking/my_bookings.html", orders=catalog.orders_of(current_user), now=utcnow(), release_form=ReleaseForm()
    )


@bp.route("/orders/<reference>/tickets")
@login_required
@redirect_admins
def order_tickets(reference):
    """The order's tickets, each with its QR code; void ones shown as void."""
    order = booking.expire_if_due(own_order(reference))
    shown = [
        {
            "ticket": ticket,
            "code": tickets.grouped(ticket.code),
            "seat": tickets.seat_text(ticket.seat),
            "qr": None
            if ticket.is_void
            else tickets.qr_svg(tickets.payload_for(ticket), title=_("QR code of ticket %(code)s", code=ticket.code)),
        }
        for ticket in tickets.tickets_of(order)
    ]
    response = make_response(render_template("booking/tickets.html", order=order, tickets=shown))
    response.headers["Cache-Control"] = "private, no-store"  # the QR codes admit their holder
    return response


@bp.route("/orders/<reference>/tickets.pdf")
@login_required
@redirect_admins
def order_tickets_pdf(reference):
    """The order's valid tickets as a printable PDF, one page each."""
    order = own_order(reference)
    response = make_response(tickets.pdf_for_order(order))
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="stagepass-{order.reference}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
