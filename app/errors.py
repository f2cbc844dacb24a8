"""Errors a user can act on: each says what went wrong and what to do next."""


class TidingsError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  {self.hint}" if self.hint else self.message


class NotFound(TidingsError):
    pass


class Conflict(TidingsError):
    """Refused because of what exists now (a slug taken, a digest not sent yet), not
    because the request was malformed: the API answers it with 409."""
