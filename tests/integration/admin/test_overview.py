"""admin/overview.py: the overview page, its pause and resume buttons, and who may use them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs.models import JobStatus, Pause, Schedule, Worker
from django_jobs.readable import format_age
from tests.support.admin import login
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db

OVERVIEW = "admin:django_jobs_queueoverview_changelist"
PAUSE = "admin:django_jobs_queueoverview_pause"
RESUME = "admin:django_jobs_queueoverview_resume"
RECORD = "tests.testapp.jobs.record"


@pytest.fixture
def superuser_client() -> Client:
    c = Client()
    c.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return c


def page(client: Client) -> str:
    response = client.get(reverse(OVERVIEW))
    assert response.status_code == 200
    return response.content.decode()


def test_format_age__reads_at_a_glance() -> None:
    cases = [
        (0, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (200, "3 min 20 s"),
        (7200, "2 h"),
        (7500, "2 h 5 min"),
        (86400 * 3 + 3600 * 4, "3 d 4 h"),
    ]
    assert [format_age(timedelta(seconds=s)) for s, _ in cases] == [text for _, text in cases]


def test_index__links_to_the_overview(superuser_client: Client) -> None:
    response = superuser_client.get(reverse("admin:index"))

    assert reverse(OVERVIEW) in response.content.decode()


def test_overview__shows_each_queues_counts_and_lag(superuser_client: Client) -> None:
    now = timezone.now()
    JobFactory.create_batch(3, queue="emails", run_at=now - timedelta(minutes=6))
    JobFactory(queue="emails", status=JobStatus.DEAD, finished_at=now - timedelta(minutes=2))

    html = page(superuser_client)

    row = html[html.index('data-queue="emails"') :]
    row = row[: row.index("</tr>")]
    assert ">3<" in row or ">3</a>" in row
    assert "6 min" in row  # the oldest ready job's age
    assert 'class="num lagging"' in row  # five minutes or more is flagged


def test_overview__shows_workers_and_what_they_run(superuser_client: Client) -> None:
    job = JobFactory(status=JobStatus.RUNNING, worker_id="host:7", started_at=timezone.now())
    Worker.objects.create(
        worker_id="host:7",
        hostname="host",
        pid=7,
        concurrency=4,
        queues=["emails"],
        running=[job.pk],
    )

    html = page(superuser_client)

    row = html[html.index('data-worker="host:7"') :]
    row = row[: row.index("</tr>")]
    assert f"#{job.pk} {RECORD}" in row
    assert "1 of 4" in row and "emails" in row


def test_overview__says_when_no_worker_runs(superuser_client: Client) -> None:
    assert "No worker is running" in page(superuser_client)


def test_pause_and_resume_a_queue(superuser_client: Client) -> None:
    response = superuser_client.post(
        reverse(PAUSE), {"kind": "queue", "value": "emails", "reason": "SMTP down"}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse(OVERVIEW)
    assert Pause.objects.filter(kind="queue", value="emails", reason="SMTP down").exists()
    assert "Paused the queue &#x27;emails&#x27;" in response.content.decode()
    assert 'data-kind="queue" data-value="emails"' in response.content.decode()

    response = superuser_client.post(
        reverse(RESUME), {"kind": "queue", "value": "emails"}, follow=True
    )

    assert not Pause.objects.exists()
    assert "Resumed the queue" in response.content.decode()


def test_pause_a_job__only_registered_names(superuser_client: Client) -> None:
    superuser_client.post(reverse(PAUSE), {"kind": "name", "value": RECORD})
    response = superuser_client.post(
        reverse(PAUSE), {"kind": "name", "value": "no.such.job"}, follow=True
    )

    assert list(Pause.objects.values_list("kind", "value")) == [("name", RECORD)]
    assert (
        "Nothing changed: no job is registered as &#x27;no.such.job&#x27;"
        in response.content.decode()
    )


def test_pause__bad_input_changes_nothing_and_says_why(superuser_client: Client) -> None:
    for data, message in [
        ({"kind": "queue", "value": " "}, "name the queue"),
        ({"kind": "bogus", "value": "x"}, "kind must be one of queue, name"),
        ({"kind": "queue", "value": "q" * 101}, "at most 100 characters"),
    ]:
        response = superuser_client.post(reverse(PAUSE), data, follow=True)
        assert message in response.content.decode()
    assert not Pause.objects.exists()


def test_pause__twice_and_resume_unpaused_warn(superuser_client: Client) -> None:
    superuser_client.post(reverse(PAUSE), {"kind": "queue", "value": "emails"})
    again = superuser_client.post(reverse(PAUSE), {"kind": "queue", "value": "emails"}, follow=True)
    never = superuser_client.post(reverse(RESUME), {"kind": "queue", "value": "other"}, follow=True)

    assert "was already paused" in again.content.decode()
    assert "was not paused" in never.content.decode()


def test_pause__get_is_not_allowed(superuser_client: Client) -> None:
    assert superuser_client.get(reverse(PAUSE)).status_code == 405
    assert superuser_client.get(reverse(RESUME)).status_code == 405


def test_pause__needs_a_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))

    response = client.post(reverse(PAUSE), {"kind": "queue", "value": "emails"})

    assert response.status_code == 403
    assert not Pause.objects.exists()


def test_permissions__view_only_sees_the_page_without_buttons() -> None:
    Pause.objects.pause_queue("emails")
    client = login("view_queueoverview")

    html = page(client)

    assert 'value="Pause"' not in html and 'value="Resume"' not in html
    assert client.post(reverse(PAUSE), {"kind": "queue", "value": "x"}).status_code == 403
    assert client.post(reverse(RESUME), {"kind": "queue", "value": "emails"}).status_code == 403
    assert Pause.objects.filter(value="emails").exists()


def test_permissions__pausing_takes_add_pause_and_resuming_delete_pause() -> None:
    pauser = login("view_queueoverview", "add_pause")

    assert pauser.post(reverse(PAUSE), {"kind": "queue", "value": "emails"}).status_code == 302
    assert pauser.post(reverse(RESUME), {"kind": "queue", "value": "emails"}).status_code == 403
    assert Pause.objects.filter(value="emails").exists()
    assert 'value="Pause"' in page(pauser) and 'value="Resume"' not in page(pauser)


def test_permissions__staff_without_the_view_permission_is_refused() -> None:
    client = login()

    assert client.get(reverse(OVERVIEW)).status_code == 403
    assert reverse(OVERVIEW) not in client.get(reverse("admin:index")).content.decode()


def test_overview__has_no_change_page_that_would_show_a_jobs_arguments(
    superuser_client: Client,
) -> None:
    job = JobFactory()

    response = superuser_client.get(f"{reverse(OVERVIEW)}{job.pk}/change/")

    assert response.status_code == 404


def test_overview__reloads_itself_only_at_an_offered_interval(superuser_client: Client) -> None:
    assert (
        'http-equiv="refresh" content="10"'
        in superuser_client.get(reverse(OVERVIEW) + "?refresh=10").content.decode()
    )
    assert (
        'http-equiv="refresh"'
        not in superuser_client.get(reverse(OVERVIEW) + "?refresh=1").content.decode()
    )


@pytest.mark.parametrize("refresh", ["²", "١٠", "10.0", " 10", "99999999999999999999", ""])
def test_overview__an_odd_refresh_value_is_ignored_not_a_500(
    superuser_client: Client, refresh: str
) -> None:
    response = superuser_client.get(reverse(OVERVIEW), {"refresh": refresh})

    assert response.status_code == 200
    assert 'http-equiv="refresh"' not in response.content.decode()


def test_overview__lists_schedules_that_do_not_fire_with_links_to_them(
    superuser_client: Client,
) -> None:
    Schedule.objects.all().delete()  # migrations of other apps may seed schedules
    unknown = Schedule.objects.create(name="gone", job_name="gone.jobs.report", cron="0 * * * *")
    failing = Schedule.objects.create(
        name="failing", job_name=RECORD, cron="0 * * * *", last_error="ValueError: <boom>"
    )
    Schedule.objects.create(name="fine", job_name=RECORD, cron="0 * * * *")
    Schedule.objects.create(name="off", job_name="gone.jobs.old", cron="0 * * * *", enabled=False)

    html = page(superuser_client)

    section = html[html.index('id="schedule-problems"') :]
    section = section[: section.index("</table>")]
    rows = section.split('class="schedule-problem-row"')[1:]
    assert len(rows) == 2
    failing_row, unknown_row = rows
    assert reverse("admin:django_jobs_schedule_change", args=[failing.pk]) in failing_row
    assert "Last tick failed" in failing_row and "ValueError: &lt;boom&gt;" in failing_row
    assert reverse("admin:django_jobs_schedule_change", args=[unknown.pk]) in unknown_row
    assert "Job not registered" in unknown_row
    assert "It never fires: No job is registered as &#x27;gone.jobs.report&#x27;" in unknown_row


def test_overview__no_schedule_section_while_every_schedule_fires(superuser_client: Client) -> None:
    Schedule.objects.all().delete()
    Schedule.objects.create(name="fine", job_name=RECORD, cron="0 * * * *")

    assert 'id="schedule-problems"' not in page(superuser_client)
