"""Sending: the admin's resend, the file and console backends, and `flask rq-worker --burst`."""

import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import jobs
from app.models import AuditEntry, OutboxEmail
from app.services import booking, mail
from tests.mail.test_outbox import outbox, paid_order
from tests.support import csrf_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def admin(factory, login):
    user = factory.admin()
    login(user)
    return user


def test_admin_resends_a_confirmation_as_a_new_email(client, admin, db_session, factory, smtp_server):
    order, buyer = paid_order(db_session, factory)
    page = client.get(f"/admin/orders/{order.reference}")
    assert "Resend confirmation" in page.get_data(as_text=True)
    response = client.post(
        f"/admin/orders/{order.reference}/resend-confirmation", data={"csrf_token": csrf_token(client, "/admin/")}
    )
    assert response.status_code == 302
    first, again = outbox(db_session)
    assert again.kind == "order.confirmed" and again.recipient == buyer.email
    assert again.dedupe_key.startswith(f"order.confirmed:{order.id}:resend:")
    [entry] = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "order.confirmation_resent")).all()
    assert (entry.actor_id, entry.subject_id, entry.data) == (admin.id, order.id, {"to": buyer.email})
    assert mail.send_due_emails() == 2
    assert [message["Subject"] for _, message in smtp_server.messages] == [first.subject, first.subject]
    assert smtp_server.messages[0][1]["Message-ID"] != smtp_server.messages[1][1]["Message-ID"]
    page = client.get(f"/admin/orders/{order.reference}").get_data(as_text=True)
    assert "The confirmation is on its way" in page and page.count("badge-sent") == 2


def test_resend_needs_the_csrf_token(client, admin, db_session, factory):
    order, _ = paid_order(db_session, factory)
    response = client.post(f"/admin/orders/{order.reference}/resend-confirmation")
    assert response.status_code == 400
    assert len(outbox(db_session)) == 1


def test_resend_of_an_order_that_is_not_confirmed_is_refused(client, admin, db_session, factory):
    order, _ = paid_order(db_session, factory)
    booking.cancel_order(order)
    response = client.post(
        f"/admin/orders/{order.reference}/resend-confirmation",
        data={"csrf_token": csrf_token(client, "/admin/")},
        follow_redirects=True,
    )
    assert "Only a confirmed order has a confirmation to send; this one is cancelled." in response.get_data(
        as_text=True
    )
    assert [row.kind for row in outbox(db_session)] == ["order.confirmed", "order.seats_cancelled"]


def test_resend_of_an_unknown_order_is_a_404(client, admin):
    response = client.post(
        "/admin/orders/SP-NOPE/resend-confirmation", data={"csrf_token": csrf_token(client, "/admin/")}
    )
    assert response.status_code == 404


def test_the_file_backend_writes_each_message_as_an_eml_file(app, db_session, factory, tmp_path):
    app.config.update(MAIL_BACKEND="file", MAIL_FILE_PATH=str(tmp_path / "outbox"))
    order, buyer = paid_order(db_session, factory)
    booking.cancel_order(order)
    assert mail.send_due_emails() == 2
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    subjects = set()
    for path in files:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message["To"] == buyer.email
        subjects.add(message["Subject"])
    assert subjects == {row.subject for row in outbox(db_session)}


def test_the_console_backend_prints_the_message(app, db_session, factory, capsys):
    app.config.update(MAIL_BACKEND="console")
    order, buyer = paid_order(db_session, factory)
    assert mail.send_due_emails() == 1
    printed = capsys.readouterr().out
    assert f"To: {buyer.email}" in printed and order.reference in printed


def test_an_unknown_backend_is_refused_at_start(app):
    from app import create_app

    config = {key: value for key, value in app.config.items() if key.isupper()}
    config["MAIL_BACKEND"] = "pigeon"
    with pytest.raises(RuntimeError, match="MAIL_BACKEND must be one of"):
        create_app(type("PigeonConfig", (), config))


def test_starttls_and_implicit_tls_together_are_refused_at_start(app):
    from app import create_app

    config = {key: value for key, value in app.config.items() if key.isupper()}
    config.update(MAIL_USE_TLS=True, MAIL_USE_SSL=True)
    with pytest.raises(RuntimeError, match="exclude each other"):
        create_app(type("BothTlsConfig", (), config))


def test_a_commit_that_writes_an_email_queues_its_job(db_session, factory, redis_client):
    paid_order(db_session, factory)
    [row] = outbox(db_session)
    [job] = jobs.queue(redis_client).get_jobs()
    assert job.func_name == "app.jobs.send_emails" and job.args == ([row.id],)


def flask_env(app, smtp_port):
    env = dict(
        os.environ,
        FLASK_APP="wsgi",
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"],
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp_port),
        # The worker signs the tickets in the PDF it attaches with the web's keys.
        TICKET_SIGNING_KEYS=app.config["TICKET_SIGNING_KEYS"],
        TICKET_SIGNING_KID=app.config["TICKET_SIGNING_KID"],
    )
    env.pop("STAGEPASS_ENV", None)
    return env


def run_flask(app, smtp_port, *args):
    return subprocess.run(
        [sys.executable, "-m", "flask", *args],
        cwd=ROOT,
        env=flask_env(app, smtp_port),
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_flask(app, smtp_port, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "flask", *args],
        cwd=ROOT,
        env=flask_env(app, smtp_port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_rq_worker_burst_sends_what_is_queued_once_and_exits(app, db_session, factory, redis_client, smtp_server):
    order, buyer = paid_order(db_session, factory)
    for _ in range(2):  # the second run finds the queue empty and the email sent
        result = run_flask(app, smtp_server.port, "rq-worker", "--burst")
        assert result.returncode == 0, result.stdout + result.stderr
    assert [recipients for recipients, _ in smtp_server.messages] == [[buyer.email]]
    [attachment] = list(smtp_server.messages[0][1].iter_attachments())
    assert attachment.get_filename() == f"tickets-{order.reference}.pdf"
    db_session.expire_all()
    assert db_session.scalar(sa.select(OutboxEmail.status)) == "sent"
    assert len(jobs.queue(redis_client)) == 0


def test_two_workers_running_the_same_jobs_at_once_send_each_email_once(
    app, db_session, factory, redis_client, smtp_server
):
    """Each confirmation's own job, plus a sweep of all of them queued twice, on two worker processes."""
    buyers = [paid_order(db_session, factory, seats=1, name=f"Buyer {number}")[1] for number in range(4)]
    ids = [row.id for row in outbox(db_session)]
    for _ in range(2):
        jobs.queue(redis_client).enqueue(jobs.send_emails, ids)
    assert len(jobs.queue(redis_client)) == 6
    workers = [start_flask(app, smtp_server.port, "rq-worker", "--burst") for _ in range(2)]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output
    assert sorted(recipients[0] for recipients, _ in smtp_server.messages) == sorted(b.email for b in buyers)
    assert {row.status for row in outbox(db_session)} == {"sent"}
