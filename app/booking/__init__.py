from flask import Blueprint

bp = Blueprint("booking", __name__)

from app.booking import api, routes, stream, waiting_room, waitlist  # noqa: E402,F401
