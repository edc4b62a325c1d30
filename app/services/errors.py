"""Domain errors: what the services refuse, with a message fit for the user and an HTTP status."""


class DomainError(Exception):
    """A refused operation. Nothing was changed."""

    code = "refused"
    status = 409
    # What the user reads when the raiser gives no message (docstrings are stripped by python -OO).
    default_message = None

    def __init__(self, message=None, **details):
        message = message or self.default_message or self.__doc__
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self):
        return {"error": self.message, "code": self.code, **self.details}


class NotFound(DomainError):
    """Not found."""

    code = "not_found"
    status = 404


class InvalidRequest(DomainError):
    """The request is not valid."""

    code = "invalid"
    status = 400


class IllegalTransition(DomainError):
    """That change of state is not allowed."""

    code = "illegal_transition"
    status = 409


class HoldExpired(DomainError):
    code = "hold_expired"
    default_message = "Your hold has expired and the seats were released. Nothing was charged."


class OrderNotFound(NotFound):
    code = "order_not_found"
    default_message = "No such booking."


class OrderNotPending(DomainError):
    code = "order_not_pending"
    default_message = "This booking is no longer waiting for payment."
