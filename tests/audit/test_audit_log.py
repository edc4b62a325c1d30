"""The audit trail: what record() writes, and that nothing in the app can change or delete a line."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEntry, utcnow
from app.services import audit
from app.services.transactions import run_unit_of_work
from tests.support import empty_tables


def only_entry(action=None):
    """The one line of the trail (of this action): factories write event.created lines too."""
    db.session.expire_all()
    query = sa.select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
    return db.session.scalars(query).one()


def test_record_writes_in_the_callers_unit_of_work(factory):
    """A line is added to the session and commits (or rolls back) with the caller's change."""
    admin = factory.admin()
    event = factory.event()

    def work():
        event_now = db.session.get(type(event), event.id)
        event_now.venue = "Other Hall"
        audit.record("event.updated", actor=admin, subject=event_now, data={"price": Decimal("12.50")})

    run_unit_of_work(work)
    entry = only_entry("event.updated")
    assert (entry.action, entry.subject_type, entry.subject_id, entry.event_id) == (
        "event.updated",
        "event",
        event.id,
        event.id,
    )
    assert (entry.actor_id, entry.actor_label) == (admin.id, admin.email)
    assert entry.data == {"price": "12.50"}


def test_record_rolls_back_with_the_unit_of_work(factory):
    event = factory.event()

    class RefusedError(Exception):
        pass

    def work():
        audit.record("event.cancelled", subject=db.session.get(type(event), event.id))
        raise RefusedError()

    with pytest.raises(RefusedError):
        run_unit_of_work(work)
    assert not db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "event.cancelled")).all()


def test_a_job_is_the_system_with_a_label(factory):
    event = factory.event()
    audit.record("event.sales_closed", subject=event, actor_label=audit.job_label("close-past-events"))
    audit.record("event.sales_closed", subject=event)
    db.session.commit()
    lines = db.session.execute(
        sa.select(AuditEntry.actor_label, AuditEntry.actor_id)
        .where(AuditEntry.action == "event.sales_closed")
        .order_by(AuditEntry.id)
    ).all()
    assert [tuple(line) for line in lines] == [("job:close-past-events", None), ("system", None)]


def test_a_new_subject_gets_its_id_before_the_line(factory):
    from app.models import User

    user = User(email="new@example.com", name="New", password_hash="x")
    db.session.add(user)
    entry = audit.record("user.created", subject=user)
    assert entry.subject_id == user.id is not None
    db.session.rollback()


@pytest.mark.parametrize("action", ["", "refunded", "Order.Refunded", "order..refunded", "order refunded"])
def test_actions_are_dotted_names(action):
    with pytest.raises(ValueError):
        audit.record(action)


def test_details_must_be_json(factory):
    with pytest.raises(TypeError):
        audit.record("order.refunded", data={"what": object()})


def committed_entry(factory):
    admin = factory.admin()
    audit.record("user.admin_granted", actor=admin, subject=admin, data={"by": "test"})
    db.session.commit()
    return only_entry("user.admin_granted")


def test_the_orm_cannot_change_a_line(factory):
    entry = committed_entry(factory)
    entry.action = "user.admin_revoked"
    with pytest.raises(audit.AuditLogIsAppendOnlyError):
        db.session.commit()
    db.session.rollback()
    assert only_entry("user.admin_granted").id == entry.id


def test_the_orm_cannot_delete_a_line(factory):
    entry = committed_entry(factory)
    db.session.delete(entry)
    with pytest.raises(audit.AuditLogIsAppendOnlyError):
        db.session.commit()
    db.session.rollback()
    assert only_entry("user.admin_granted").id == entry.id


@pytest.mark.parametrize(
    "statement",
    [
        lambda: sa.update(AuditEntry).values(action="user.admin_revoked"),
        lambda: sa.delete(AuditEntry),
        lambda: AuditEntry.__table__.update().values(actor_label="someone else"),
        lambda: AuditEntry.__table__.delete(),
        lambda: sa.text("UPDATE audit_log SET actor_label = 'x'"),
        lambda: sa.text("delete from audit_log"),
        lambda: sa.text('DELETE FROM "audit_log" WHERE id > 0'),
    ],
    ids=["orm-update", "orm-delete", "core-update", "core-delete", "text-update", "text-delete", "quoted"],
)
def test_statements_cannot_rewrite_the_table(factory, statement):
    """ORM bulk, Core and plain SQL UPDATE/DELETE on audit_log are refused, in a session or not."""
    entry = committed_entry(factory)
    with pytest.raises(audit.AuditLogIsAppendOnlyError):
        db.session.execute(statement())
    db.session.rollback()
    with pytest.raises(audit.AuditLogIsAppendOnlyError), db.engine.begin() as connection:
        connection.execute(statement())
    assert only_entry("user.admin_granted").actor_label == entry.actor_label


def test_other_tables_are_not_affected(factory):
    """Statements that merely mention audit_log in another table's change still run."""
    user = factory.user()
    db.session.execute(sa.text("UPDATE users SET name = 'audit_log fan' WHERE id = :id"), {"id": user.id})
    db.session.commit()


def test_emptying_the_test_database_is_the_named_exception(factory):
    committed_entry(factory)
    empty_tables()
    assert db.session.scalar(sa.select(sa.func.count(AuditEntry.id))) == 0


def test_deleting_an_actor_keeps_the_line_and_its_label(factory):
    """The account goes; the line stays, with no actor id but the label saying who it was."""
    admin, other = factory.admin(), factory.admin()
    audit.record("user.updated", actor=other, subject=admin, now=utcnow())
    db.session.commit()
    from app.services import accounts

    accounts.delete_user(db.session.get(type(other), other.id), acting_admin=admin)
    entry = only_entry("user.updated")
    assert entry.actor_label == other.email
    if db.engine.dialect.name != "sqlite":  # SQLite here does not enforce foreign keys
        assert entry.actor_id is None
