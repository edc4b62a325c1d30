"""The payment provider interface, and the provider the configuration chooses (PAYMENT_PROVIDER).

A provider charges and refunds, and remembers its answer to every idempotency key: asked again
with a key it has seen, it gives the same answer and moves no money; asked what became of a key
(`find_payment`), it says, or None if the request never reached it. When it cannot be reached or
its answer is lost it raises OSError (ConnectionError, TimeoutError): the caller then does not
know whether money moved, and asks again later with the same key.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Protocol

from flask import current_app

# name in PAYMENT_PROVIDER -> "module:factory", the factory called with the app.
PROVIDERS = {"sandbox": "app.services.payments_sandbox:from_app"}
EXTENSION_KEY = "stagepass_payment_provider"


@dataclass(frozen=True)
class ProviderResult:
    """A provider's answer: result is a PaymentResult (succeeded, declined or error)."""

    result: str
    reference: str | None
    failure_reason: str | None = None
    card_last4: str | None = None
    amount: Decimal | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["amount"] = None if self.amount is None else str(self.amount)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ProviderResult:
        amount = data.get("amount")
        return cls(**{**data, "amount": None if amount is None else Decimal(amount)})


class PaymentProvider(Protocol):
    def charge(self, card_number: str, amount: Decimal, *, idempotency_key: str) -> ProviderResult:
        """Charge the card once per key; raises OSError when there is no answer."""

    def refund(self, charge_reference: str | None, amount: Decimal, *, idempotency_key: str) -> ProviderResult:
        """Refund part or all of a charge once per key; raises OSError when there is no answer."""

    def find_payment(self, idempotency_key: str) -> ProviderResult | None:
        """The answer given to this key, or None if no request with it ever reached the provider."""


def init_app(app) -> None:
    """Build the configured provider once per app (it is shared by every request and job)."""
    name = app.config.get("PAYMENT_PROVIDER", "sandbox")
    try:
        module_name, factory_name = PROVIDERS[name].split(":")
    except KeyError:
        raise RuntimeError(f"PAYMENT_PROVIDER must be one of {sorted(PROVIDERS)}, not {name!r}") from None
    factory = getattr(importlib.import_module(module_name), factory_name)
    app.extensions[EXTENSION_KEY] = factory(app)


def get_provider() -> PaymentProvider:
    """The app's payment provider."""
    return current_app.extensions[EXTENSION_KEY]
