"""The waiting room's tests start without events cached by an earlier test (ids are reused)."""

import pytest


@pytest.fixture(autouse=True)
def fresh_room_events():
    from app.booking.waiting_room import forget_room_events

    forget_room_events()
    yield
    forget_room_events()
