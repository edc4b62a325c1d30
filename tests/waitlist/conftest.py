"""The mail tests' real SMTP server (aiosmtpd), for the waiting list's emails."""

from tests.mail.conftest import smtp_server  # noqa: F401  (a fixture, used by name)
