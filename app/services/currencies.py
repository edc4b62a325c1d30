"""Currencies: ISO 4217 codes in use today, and prices exact to each one's minor units.

Money columns keep two decimals, so a currency with three minor units (BHD, KWD...) is refused
rather than rounded; one without minor units (JPY) takes whole amounts only.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache

from babel.core import get_global
from babel.numbers import get_currency_precision, get_territory_currencies
from flask_babel import gettext as _

from app.services.errors import InvalidRequest

STORED_DECIMALS = 2


@cache
def currency_codes() -> frozenset[str]:
    """The ISO 4217 codes some country uses as legal tender today (no historic or test codes)."""
    today = date.today()
    codes = set()
    for territory in get_global("territory_currencies"):
        codes.update(get_territory_currencies(territory, today, tender=True))
    return frozenset(code for code in codes if get_currency_precision(code) <= STORED_DECIMALS)


def check_currency(code: str | None) -> str:
    """The code in upper case; raises InvalidRequest for anything that is no currency we can price in."""
    code = (code or "").strip().upper()
    if code not in currency_codes():
        raise InvalidRequest(_("Enter a currency as its ISO 4217 code, such as EUR, USD or JPY."))
    return code


def minor_units(code: str) -> int:
    """How many decimals the currency has: 2 for EUR, 0 for JPY."""
    return get_currency_precision(code)


def check_price_in(price: Decimal, code: str) -> None:
    """Refuses a price with more decimals than the currency has (10.50 JPY)."""
    places = minor_units(code)
    if price != price.quantize(Decimal(1).scaleb(-places)):
        if places == 0:
            raise InvalidRequest(_("%(currency)s prices are whole amounts, without decimals.", currency=code))
        raise InvalidRequest(_("%(currency)s prices have at most %(places)d decimals.", currency=code, places=places))


def plain_amount(amount: Decimal, code: str) -> str:
    """The amount with the currency's decimals and no symbol, for exports: 80.00 EUR, 8000 JPY."""
    places = minor_units(code)
    return f"{Decimal(amount).quantize(Decimal(1).scaleb(-places)):.{places}f}"
