"""Flask-Mailman backends of our own: the development outbox folder."""

import os
import secrets

from flask_mailman.backends.file import EmailBackend as FileEmailBackend

from app.models import utcnow


class EmlFileEmailBackend(FileEmailBackend):
    """Writes each message as its own .eml file (Flask-Mailman's file backend appends them to one log)."""

    def write_message(self, message):
        name = f"{utcnow():%Y%m%d-%H%M%S-%f}-{secrets.token_hex(4)}.eml"
        with open(os.path.join(self.file_path, name), "wb") as eml:
            eml.write(message.message().as_bytes())

    def open(self):
        return False  # nothing to keep open: every message opens a file of its own

    def close(self):
        pass

    def send_messages(self, email_messages):
        """Write every message to a file of its own; how many were written."""
        with self._lock:
            for message in email_messages:
                self.write_message(message)
        return len(email_messages)
