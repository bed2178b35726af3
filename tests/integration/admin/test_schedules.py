"""admin/schedules.py: the list, the form's refusals, the preview, the actions, code-owned rows."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from django_jobs import cron
from django_jobs.models import Job, Schedule

pytestmark = pytest.mark.django_db

LIST = "admin:django_jobs_schedule_changelist"
ADD = "admin:django_jobs_schedule_add"
RECORD = "tests.testapp.jobs.record"


@pytest.fixture(autouse=True)
def _only_our_schedules(db: None) -> None:
    # Migrations of other apps may seed schedules (the example shop's nightly sync).
    Schedule.objects.all().delete()


@pytest.fixture
def client() -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    c = Client()
    c.force_login(user)
    return c


def change_url(schedule: Schedule) -> str:
    return reverse("admin:django_jobs_schedule_change", args=[schedule.pk])


def make(**fields: Any) -> Schedule:
    fields.setdefault("name", "nightly")
    fields.setdefault("job_name", RECORD)
    fields.setdefault("cron", "5 0 * * *")
    fields.setdefault("timezone", "UTC")
    schedule = Schedule(**fields)
    schedule.save()
    return schedule


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "nightly", "job_name": RECORD, "args": "[]", "kwargs": "{}", "cron": "5 0 * * *",
        "timezone": "Europe/Berlin", "catch_up": "once", "enabled": "on", "queue": "", "priority": "",
    }
    data.update(overrides)
    return data


def text(response: Any) -> str:
    """The page as text, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def errors(response: Any) -> str:
    assert response.status_code == 200, "expected the form again, with errors"
    form = response.context["adminform"].form
    return " ".join(message for messages in form.errors.values() for message in messages)


# -- the list --------------------------------------------------------------------------------------


def test_list__shows_the_cron_in_words_the_timezone_and_next_run_on_its_wall_clock(client: Client) -> None:
    schedule = make(timezone="Europe/Berlin")

    page = text(client.get(reverse(LIST)))

    assert "At 00:05, every day" in page
    assert "Europe/Berlin" in page
    local = schedule.next_run_at.astimezone(cron.zone("Europe/Berlin"))
    assert local.strftime("%Y-%m-%d 00:05 %Z") in page


def test_list__last_run_shows_the_outcome_of_the_job_it_enqueued(client: Client) -> None:
    schedule = make()
    job = schedule.run_now()
    Job.objects.filter(pk=job.pk).update(status="dead")

    response = client.get(reverse(LIST))

    assert "· Dead" in text(response)
    try:
        url = reverse("admin:django_jobs_job_change", args=[job.pk])
    except NoReverseMatch:
        url = None  # the Job admin isn't registered (yet): plain text, no link
    if url:
        assert f'href="{url}"' in response.content.decode()


def test_list__a_schedule_whose_last_tick_failed_shows_why(client: Client) -> None:
    schedule = make()
    Schedule.objects.filter(pk=schedule.pk).update(last_error="Can't enqueue 'x': too many positional arguments")

    assert "too many positional arguments" in text(client.get(reverse(LIST)))


def test_list__a_schedule_for_an_unregistered_job_says_it_never_runs(client: Client) -> None:
    schedule = make()
    Schedule.objects.filter(pk=schedule.pk).update(job_name="gone.jobs.report")

    assert "Never: no job named gone.jobs.report is registered." in text(client.get(reverse(LIST)))


def test_change__a_schedule_for_an_unregistered_job_warns_first_on_its_page(client: Client) -> None:
    schedule = make()
    Schedule.objects.filter(pk=schedule.pk).update(job_name="tests.testapp.jobs.recrod")

    response = client.get(change_url(schedule))

    assert response.status_code == 200
    page = text(response)
    warning = (
        "Needs attention Problems: It never fires: No job is registered as "
        "'tests.testapp.jobs.recrod'. Did you mean 'tests.testapp.jobs.record'?"
    )
    assert warning in page
    assert page.index("Needs attention") < page.index("Job name")


def test_change__a_schedule_whose_last_tick_failed_says_why_first_on_its_page(client: Client) -> None:
    schedule = make()
    Schedule.objects.filter(pk=schedule.pk).update(last_error="DataError: integer out of range")

    page = text(client.get(change_url(schedule)))

    assert "Needs attention Problems: Its last due tick enqueued nothing: DataError: integer out of range" in page


def test_change__a_healthy_schedule_has_no_warning(client: Client) -> None:
    assert "Needs attention" not in text(client.get(change_url(make())))


# -- the form: refusals ----------------------------------------------------------------------------


def test_add__a_good_schedule_is_saved_with_its_next_run(client: Client) -> None:
    before = timezone.now()
    response = client.post(reverse(ADD), form_data(cron=" 5  0 * * * ", kwargs='{"label": "x"}'))

    assert response.status_code == 302, errors(response)
    schedule = Schedule.objects.get()
    assert (schedule.cron, schedule.kwargs, schedule.source) == ("5 0 * * *", {"label": "x"}, "admin")
    assert schedule.next_run_at == cron.next_after("5 0 * * *", "Europe/Berlin", before)


def test_add__the_timezone_defaults_to_settings_time_zone(client: Client, settings: Any) -> None:
    settings.TIME_ZONE = "Asia/Tokyo"

    assert 'value="Asia/Tokyo"' in client.get(reverse(ADD)).content.decode()


def test_add__job_name_offers_the_registered_jobs(client: Client) -> None:
    page = client.get(reverse(ADD)).content.decode()

    assert f'<option value="{RECORD}">' in page
    assert '<option value="tests.add">' in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cron", "5 0 * *", "'5 0 * *' has 4 fields; a cron expression needs 5: minute hour day-of-month month day-of-week"),
        ("cron", "61 0 * * *", "the minute field '61' is not valid; minute takes 0-59"),
        ("cron", "0 0 30 2 *", "never fires"),
        ("timezone", "Europe/Berln", "'Europe/Berln' is not a timezone in the IANA database. Did you mean 'Europe/Berlin'?"),
        ("timezone", "", "This field is required."),
        ("job_name", "tests.testapp.jobs.nope", "No job is registered as 'tests.testapp.jobs.nope'"),
        ("args", "{}", "Arguments must be a JSON list"),
        ("kwargs", "[1]", "Keyword arguments must be a JSON object"),
        ("kwargs", "{label: 1}", "Enter a valid JSON."),
        ("kwargs", '{"nope": 1}', "Can't enqueue 'tests.testapp.jobs.record': got an unexpected keyword argument 'nope'"),
        ("args", '["a", "b"]', "too many positional arguments"),
    ],
)
def test_add__bad_input_is_refused_saying_what_is_wrong(client: Client, field: str, value: str, message: str) -> None:
    response = client.post(reverse(ADD), form_data(**{field: value}))

    assert message in errors(response)
    assert not Schedule.objects.exists()


def test_add__arguments_are_checked_against_the_chosen_jobs_signature(client: Client) -> None:
    response = client.post(reverse(ADD), form_data(job_name="tests.add", args="[1]"))

    assert "missing a required argument: 'b'" in errors(response)
    assert "Its signature is add(a: 'int', b: 'int')" in errors(response)

    response = client.post(reverse(ADD), form_data(job_name="tests.add", args="[1, 2]"))
    assert response.status_code == 302


def test_add__a_duplicate_name_is_refused(client: Client) -> None:
    make(name="nightly")

    assert "Schedule with this Name already exists." in errors(client.post(reverse(ADD), form_data()))


# -- the form: preview and edits -------------------------------------------------------------------


def test_change__previews_the_next_five_runs_in_the_schedules_timezone(client: Client) -> None:
    schedule = make(cron="30 2 * * *", timezone="Europe/Berlin")

    page = text(client.get(change_url(schedule)))

    expected = [t.astimezone(cron.zone("Europe/Berlin")).strftime("%a %Y-%m-%d %H:%M %Z")
                for t in cron.next_times("30 2 * * *", "Europe/Berlin", timezone.now(), 5)]
    assert "Next 5 runs" in page and "At 02:30, every day" in page
    for line in expected:
        assert line in page
    assert "02:30 CE" in expected[0]


def test_change__the_preview_follows_the_submitted_cron_when_the_form_comes_back(client: Client) -> None:
    schedule = make(cron="5 0 * * *", timezone="UTC")

    response = client.post(change_url(schedule), form_data(cron="0 12 * * *", timezone="UTC", kwargs="[1]"))

    assert "Keyword arguments must be a JSON object" in errors(response)
    page = text(response)
    assert page.count("12:00 UTC") == 5
    assert "00:05 UTC" not in page.split("Next 5 runs")[1].split("Catch up")[0]


def test_change__the_preview_explains_a_bad_cron(client: Client) -> None:
    schedule = make()

    response = client.post(change_url(schedule), form_data(cron="5 0 * *"))

    assert "No preview: '5 0 * *' has 4 fields" in text(response)


def test_change__a_new_cron_recomputes_next_run_at_at_once(client: Client) -> None:
    schedule = make(cron="5 0 * * *", timezone="UTC")
    before = timezone.now()

    response = client.post(change_url(schedule), form_data(cron="*/10 * * * *", timezone="UTC"))

    assert response.status_code == 302, errors(response)
    assert Schedule.objects.get().next_run_at == cron.next_after("*/10 * * * *", "UTC", before)


def test_change__other_edits_keep_next_run_at_and_what_the_scheduler_wrote(client: Client) -> None:
    schedule = make(cron="5 0 * * *", timezone="UTC")
    page = client.get(change_url(schedule))  # loaded before the scheduler fires…
    assert page.status_code == 200
    due = timezone.now() - timedelta(minutes=1)
    job = schedule.run_now()
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=due)

    response = client.post(change_url(schedule), form_data(timezone="UTC", kwargs='{"label": "edited"}'))

    assert response.status_code == 302, errors(response)
    schedule = Schedule.objects.get()
    assert (schedule.kwargs, schedule.next_run_at, schedule.last_job_id) == ({"label": "edited"}, due, job.pk)


# -- actions ---------------------------------------------------------------------------------------


def act(client: Client, action: str, *schedules: Schedule) -> list[str]:
    response = client.post(
        reverse(LIST), {"action": action, "_selected_action": [s.pk for s in schedules]}, follow=True
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_action_run_now__enqueues_one_job_per_schedule_linked_to_it(client: Client) -> None:
    a, b = make(name="a"), make(name="b", enabled=False)

    messages = act(client, "run_now", a, b)

    jobs = list(Job.objects.order_by("id"))
    assert [(j.schedule_id, j.scheduled_for) for j in jobs] == [(a.pk, None), (b.pk, None)]
    assert messages == [f"Enqueued 2 jobs: a (job #{jobs[0].pk}), b (job #{jobs[1].pk})."]
    assert Schedule.objects.get(pk=a.pk).last_job_id == jobs[0].pk


def test_action_run_now__says_why_a_schedule_could_not_run(client: Client) -> None:
    good = make(name="good")
    broken = make(name="broken", job_name="tests.add", args=[1, 2])
    Schedule.objects.filter(pk=broken.pk).update(args=[1])

    messages = act(client, "run_now", good, broken)

    assert len(messages) == 2
    assert messages[0].startswith("broken: nothing enqueued: Can't enqueue 'tests.add': missing a required argument")
    assert messages[1].startswith("Enqueued 1 job: good (job #")
    assert Job.objects.count() == 1


def test_action_run_now__a_job_enqueued_receiver_that_raises_is_reported_not_a_500(client: Client) -> None:
    from django_jobs.signals import job_enqueued

    def broken(sender: Any, job: Job, **kwargs: Any) -> None:
        raise ValueError("the receiver is broken")

    schedule = make()
    job_enqueued.connect(broken, dispatch_uid="tests.broken_receiver")
    try:
        messages = act(client, "run_now", schedule)
    finally:
        job_enqueued.disconnect(dispatch_uid="tests.broken_receiver")

    assert messages == ["nightly: nothing enqueued: ValueError: the receiver is broken"]
    assert not Job.objects.exists()


def test_action_disable_then_enable__report_what_changed(client: Client) -> None:
    a, b = make(name="a"), make(name="b", enabled=False)

    assert act(client, "disable", a, b) == ["Disabled 1 schedule. 1 was already disabled."]
    assert set(Schedule.objects.values_list("enabled", "next_run_at")) == {(False, None)}

    before = timezone.now()
    assert act(client, "enable", a, b) == ["Enabled 2 schedules."]
    assert set(Schedule.objects.values_list("next_run_at", flat=True)) == {cron.next_after("5 0 * * *", "UTC", before)}

    assert act(client, "enable", a) == ["Enabled 0 schedules. 1 was already enabled."]


# -- schedules declared in code --------------------------------------------------------------------


def test_code_schedule__shows_what_the_code_owns_read_only(client: Client) -> None:
    schedule = make(source="code")

    page = client.get(change_url(schedule)).content.decode()

    assert 'name="cron"' not in page and 'name="job_name"' not in page and 'name="kwargs"' not in page
    assert 'name="enabled"' in page
    assert "5 0 * * *" in page


def test_code_schedule__the_admin_may_disable_it_but_not_change_its_cron(client: Client) -> None:
    schedule = make(source="code")

    response = client.post(change_url(schedule), form_data(cron="0 1 * * *", enabled=""))

    assert response.status_code == 302, errors(response)
    schedule = Schedule.objects.get()
    assert (schedule.cron, schedule.enabled, schedule.next_run_at) == ("5 0 * * *", False, None)


def test_code_schedule__cannot_be_deleted_from_the_admin(client: Client) -> None:
    schedule = make(source="code")

    response = client.post(reverse("admin:django_jobs_schedule_delete", args=[schedule.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert Schedule.objects.exists()
