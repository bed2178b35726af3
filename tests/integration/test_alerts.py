"""alerts.py: mail ADMINS when a job goes dead, at most once per job name per interval."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import django
import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from django_jobs import alerts
from django_jobs.models import DeadJobMail, JobStatus
from tests.support.factories import JobFactory
from tests.support.procs import wait_until
from tests.testapp.jobs import fail_fatally

NOW = timezone.now().replace(microsecond=0)
# Django 6 takes addresses; 5.2 (name, address) pairs.
ADMINS = ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]
ERROR = {
    "class": "builtins.KeyError",
    "message": "'no such thing'",
    "traceback": "Traceback…\nKeyError",
}


@pytest.fixture
def mail_on_dead(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.ADMINS = ADMINS
    settings.DJANGO_JOBS = {
        **settings.DJANGO_JOBS,
        "MAIL_ADMINS_ON_DEAD": True,
        "MAIL_ADMINS_INTERVAL": 600,
    }
    monkeypatch.setattr(alerts, "SEND_IN_BACKGROUND", False)
    return settings


def died(
    job_id: int = 1, name: str = "shop.sync", status: str = JobStatus.DEAD, **kwargs: Any
) -> None:
    alerts.on_job_finished(
        sender=None,
        job_id=job_id,
        name=name,
        status=status,
        attempt=3,
        error=ERROR,
        outcome="failed",
        **kwargs,
    )


# -- the shared rate limit ---------------------------------------------------------------------


@pytest.mark.django_db
def test_decide__one_mail_per_name_per_interval_counting_the_rest(mail_on_dead: Any) -> None:
    decisions = [
        alerts.decide("default", name="a", now=NOW + timedelta(seconds=s)) for s in (0, 10, 20)
    ]
    later = alerts.decide("default", name="a", now=NOW + timedelta(seconds=600))

    assert decisions == [(True, 0, None), (False, 1, NOW), (False, 2, NOW)]
    assert later == (True, 2, NOW)
    assert DeadJobMail.objects.get(name="a").unmailed == 0


@pytest.mark.django_db
def test_decide__each_job_name_has_its_own_limit(mail_on_dead: Any) -> None:
    assert alerts.decide("default", name="a", now=NOW)[0]
    assert alerts.decide("default", name="b", now=NOW)[0]
    assert not alerts.decide("default", name="a", now=NOW + timedelta(seconds=1))[0]


# -- the receiver ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_receiver__mails_admins_about_a_dead_job(mail_on_dead: Any) -> None:
    job = JobFactory(name="shop.sync", queue="reports", status=JobStatus.DEAD)

    died(job.pk)

    (message,) = mail.outbox
    assert message.to == ["ops@example.com"]
    assert message.subject.endswith(f"Job shop.sync went dead (#{job.pk})")
    assert f"Job #{job.pk} shop.sync (queue reports) went dead after attempt 3." in message.body
    assert "Error: KeyError: 'no such thing'" in message.body
    assert "Traceback…" in message.body


@pytest.mark.django_db
def test_receiver__the_mail_links_to_the_job_with_an_absolute_url_from_admin_base_url(mail_on_dead: Any) -> None:
    mail_on_dead.DJANGO_JOBS = {**mail_on_dead.DJANGO_JOBS, "ADMIN_BASE_URL": "https://ops.example.com/"}
    job = JobFactory(name="shop.sync", status=JobStatus.DEAD)

    died(job.pk)

    (message,) = mail.outbox
    assert f"The job in the admin: https://ops.example.com/admin/django_jobs/job/{job.pk}/change/\n" in message.body
    assert "Every dead job: https://ops.example.com/admin/django_jobs/deadletter/" in message.body


@pytest.mark.django_db
def test_receiver__without_admin_base_url_the_mail_gives_the_path(mail_on_dead: Any) -> None:
    job = JobFactory(name="shop.sync", status=JobStatus.DEAD)

    died(job.pk)

    (message,) = mail.outbox
    assert f"The job in the admin: /admin/django_jobs/job/{job.pk}/change/\n" in message.body


@pytest.mark.django_db
def test_receiver__the_next_mail_says_how_many_died_unmailed(mail_on_dead: Any) -> None:
    for job_id in (1, 2, 3):
        died(job_id)
    DeadJobMail.objects.update(mailed_at=NOW - timedelta(hours=1))
    died(4)

    first, second = mail.outbox
    assert "2 more since the last mail" in second.subject
    assert "2 more shop.sync jobs went dead since the last mail" in second.body


@pytest.mark.django_db
def test_receiver__nothing_unless_turned_on_or_dead(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ADMINS = ADMINS
    monkeypatch.setattr(alerts, "SEND_IN_BACKGROUND", False)
    died()  # MAIL_ADMINS_ON_DEAD is off by default
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "MAIL_ADMINS_ON_DEAD": True}
    died(status=JobStatus.RETRYING)
    died(status=JobStatus.SUCCEEDED)

    assert mail.outbox == []
    assert not DeadJobMail.objects.exists()


@pytest.mark.django_db
def test_receiver__sends_from_a_background_thread(
    mail_on_dead: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts, "SEND_IN_BACKGROUND", True)

    died()

    wait_until(lambda: len(mail.outbox) == 1, message="the mail from the background thread")


class FailingBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("SMTP is down")


@pytest.mark.django_db
def test_receiver__a_mail_server_failure_is_logged_not_raised(
    mail_on_dead: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mail_on_dead.EMAIL_BACKEND = "tests.integration.test_alerts.FailingBackend"

    died()  # does not raise into the worker

    assert "event=alert_mail_failed" in caplog.text


# -- through a real worker ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker__three_deaths_of_one_job_send_one_mail(
    mail_on_dead: Any,
    run_worker: Callable[..., Any],
) -> None:
    jobs = [fail_fatally.enqueue() for _ in range(3)]

    run_worker()

    for job in jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.DEAD
    (message,) = mail.outbox
    assert "tests.testapp.jobs.fail_fatally went dead" in message.subject
    assert DeadJobMail.objects.get(name=fail_fatally.name).unmailed == 2
