"""Domain errors: what the services refuse, with a message fit for the user and an HTTP status.

Each class names its message in `default_message` (lazily translated, so it is read in the
language of the request that shows it); a raise may pass a more precise, translated message.
"""

from flask_babel import lazy_gettext as _l


class DomainError(Exception):
    """A refused operation. Nothing was changed."""

    code = "refused"
    status = 409
    default_message = _l("That was refused. Nothing was changed.")

    def __init__(self, message=None, **details):
        # Read now, in the language of the request that raised it: a str flashes and serialises.
        self.message = str(message or self.default_message)
        super().__init__(self.message)
        self.details = details

    def to_json(self):
        return {"error": str(self.message), "code": self.code, **self.details}


class NotFound(DomainError):
    """Not found."""

    code = "not_found"
    status = 404
    default_message = _l("Not found.")


class InvalidRequest(DomainError):
    """The request is not valid."""

    code = "invalid"
    status = 400
    default_message = _l("The request is not valid.")


class IllegalTransition(DomainError):
    """That change of state is not allowed."""

    code = "illegal_transition"
    status = 409
    default_message = _l("That change of state is not allowed.")


class HoldExpired(DomainError):
    code = "hold_expired"
    default_message = _l("Your hold has expired and the seats were released. Nothing was charged.")


class OrderNotFound(NotFound):
    code = "order_not_found"
    default_message = _l("No such booking.")


class OrderNotPending(DomainError):
    code = "order_not_pending"
    default_message = _l("This booking is no longer waiting for payment.")
