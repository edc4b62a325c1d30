"""What buyers read about payments: method names, the sandbox's test cards, and what became of a payment."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models import Order, OrderStatus, Payment, PaymentKind, PaymentMethod, PaymentResult, PaymentStatus
from app.services import payments_sandbox as sandbox

METHODS = {PaymentMethod.CARD: _l("Card"), PaymentMethod.WALLET: _l("StagePass Wallet")}

SANDBOX_CARDS = {
    sandbox.CARD_SUCCEEDS: _l("succeeds"),
    sandbox.CARD_DECLINED: _l("is declined (insufficient funds)"),
    sandbox.CARD_PROVIDER_ERROR: _l("fails with a provider error"),
    sandbox.CARD_PROVIDER_TIMEOUT: _l("is charged, but the provider's answer is lost (pay again: charged once)"),
    sandbox.CARD_REFUND_FAILS: _l("succeeds, but its refunds are refused"),
}

# Stored on payment rows (and compared), so plain text; the pages translate what they show.
PROVIDER_DID_NOT_ANSWER = "The payment provider did not answer."
NEVER_REACHED_PROVIDER = "The payment never reached the provider; nothing was charged."


def _charge(order: Order) -> Payment | None:
    return next((p for p in order.payments if p.kind == PaymentKind.CHARGE), None)


def payment_summary(order: Order) -> str:
    """What became of the order's payment, in a sentence for its buyer."""
    charge = _charge(order)
    if charge is None:
        return _("Not paid yet.") if order.status == OrderStatus.PENDING else _("Nothing was charged.")
    if charge.result == PaymentResult.SUCCEEDED:
        if order.status != OrderStatus.CONFIRMED and order.payment_status != PaymentStatus.PENDING:
            return _refunded_after_closing(order)
        if charge.method == PaymentMethod.CARD:
            return _("Paid by card ending %(last4)s.", last4=charge.card_last4)
        return _("Paid with the %(method)s.", method=METHODS[charge.method])
    if charge.provider_reference is None and charge.method == PaymentMethod.CARD:
        return _unanswered(order, charge)
    if charge.result == PaymentResult.PENDING:
        return _("Awaiting your approval in the StagePass Wallet.")
    if charge.result == PaymentResult.DECLINED:
        return _("Payment declined: %(reason)s", reason=charge.failure_reason)
    if order.status == OrderStatus.FAILED:
        return _("Payment failed: %(reason)s", reason=charge.failure_reason)
    return _("The payment was not completed; nothing was charged.")


def _refunded_after_closing(order: Order) -> str:
    if order.payment_status == PaymentStatus.REFUNDED:
        return _(
            "Your card was charged after this booking had closed, when its seats were no longer yours, "
            "so the payment was refunded in full automatically."
        )
    return _(
        "Your card was charged after this booking had closed, when its seats were no longer yours: "
        "the payment is being refunded in full automatically."
    )


def _unanswered(order: Order, charge: Payment) -> str:
    if charge.failure_reason == NEVER_REACHED_PROVIDER:
        return _("The payment never reached the provider; nothing was charged.")
    if order.status == OrderStatus.PENDING:
        return _("The payment provider did not answer. Pay again: you will be charged at most once.")
    return _("The payment provider did not answer before the hold ran out.")


def automatic_refund_email(order: Order) -> tuple:
    """The subject and paragraphs (lazy strings) of the email about an automatic refund."""
    subject = _l("Your payment for %(reference)s was refunded", reference=order.reference)
    paragraphs = [
        _l(
            "Your card was charged for booking %(reference)s after the booking had closed (its hold ran out "
            "or it was cancelled while the payment provider was answering), when its seats were no longer yours.",
            reference=order.reference,
        ),
        _l("We have refunded the full amount automatically. Please choose your seats again."),
    ]
    return subject, paragraphs
