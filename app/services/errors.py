"""Domain errors: what the services refuse, with a message fit for the user and an HTTP status."""


class DomainError(Exception):
    """A refused operation. Nothing was changed."""

    code = "refused"
    status = 409

    def __init__(self, message=None, **details):
        super().__init__(message or self.__doc__)
        self.message = message or self.__doc__
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
