"""Numbers from URLs, bounded to what the database can compare: a larger one names no row."""

from werkzeug.routing import IntegerConverter

# Ids are signed 64-bit integers on SQLite and MariaDB; SQLite refuses to bind a larger number
# (OverflowError) and MariaDB refuses it as a LIMIT or OFFSET.
MIN_ID, MAX_ID = -(2**63), 2**63 - 1


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` within the signed 64-bit range, so a larger number is a 404 rather than a 500."""

    def __init__(self, map, fixed_digits=0, min=None, max=None, signed=False):
        super().__init__(
            map,
            fixed_digits=fixed_digits,
            min=MIN_ID if min is None else min,
            max=MAX_ID if max is None else max,
            signed=signed,
        )


def bounded_int(text: str) -> int:
    """The id in a query argument; ValueError when it is no integer or outside an id's range."""
    value = int(text)
    if not MIN_ID <= value <= MAX_ID:
        raise ValueError(f"{text!r} is out of range")
    return value


def register(app):
    # Before any blueprint: each rule looks its converters up when it is added.
    app.url_map.converters["int"] = BoundedIntConverter
