"""admin/jobs.py, admin/verbs.py and admin/pauses.py: the list, the job's page, the operator's
verbs (one job, a selection, every job matching a filter), dead letters, pauses, and who may do
what."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_jobs import models
from django_jobs.admin.paginator import EstimatedCountPaginator
from django_jobs.models import Job, Pause, Schedule, Worker
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:django_jobs_job_changelist")
DEAD = reverse("admin:django_jobs_deadletter_changelist")
RECORD = "tests.testapp.jobs.record"
FAIL = "tests.testapp.jobs.fail_always"


@pytest.fixture(autouse=True)
def _only_our_rows(db: None) -> None:
    # Migrations of other apps may seed schedules (the example shop's nightly sync).
    Schedule.objects.all().delete()


def login(*perms: str, staff: bool = True, superuser: bool = False, name: str = "op") -> Client:
    """A client logged in as a user with these ``django_jobs`` permissions (codenames)."""
    user = User.objects.create_user(
        name, f"{name}@example.com", "pw", is_staff=staff, is_superuser=superuser
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_jobs", codename__in=perms)
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def client() -> Client:
    return login(superuser=True, name="admin")


@pytest.fixture
def viewer() -> Client:
    """Staff who may look at jobs and dead letters but act on nothing."""
    return login("view_job", "view_deadletter", name="viewer")


def change_url(job: Job) -> str:
    return reverse("admin:django_jobs_job_change", args=[job.pk])


def do_url(job: Job, slug: str) -> str:
    return reverse("admin:django_jobs_job_one", args=[job.pk, slug])


def bulk_url(slug: str, query: str = "", model: str = "job") -> str:
    return reverse(f"admin:django_jobs_{model}_bulk", args=[slug]) + (f"?{query}" if query else "")


def text(response: Any) -> str:
    """The page as text, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def said(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def status(job: Job) -> str:
    return Job.objects.get(pk=job.pk).status


def analyze() -> None:
    """Bring the planner's statistics up to date: the lists' counts start from its estimate, and
    rows other tests inserted and removed would otherwise still count in it."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")


def dead(**fields: Any) -> Job:
    fields.setdefault("name", FAIL)
    fields.setdefault("attempts", 3)
    fields.setdefault("last_error", "ValueError: boom")
    fields.setdefault("finished_at", timezone.now())
    return JobFactory(status="dead", **fields)


# -- the list --------------------------------------------------------------------------------------


def test_list__shows_status_attempts_age_duration_error_and_progress(client: Client) -> None:
    now = timezone.now()
    JobFactory(
        name=FAIL,
        queue="emails",
        status="retrying",
        attempts=2,
        max_attempts=5,
        created_at=now - timedelta(minutes=3),
        started_at=now - timedelta(seconds=130),
        finished_at=now - timedelta(seconds=10),
        last_error="ValueError: boom\nsecond line",
    )
    JobFactory(
        status="running",
        attempts=1,
        progress={"percent": 40, "message": "synced 400 of 1000"},
        started_at=now - timedelta(seconds=5),
    )

    response = client.get(LIST)
    page = text(response)

    assert response.status_code == 200
    assert '<span class="dj-badge dj-retrying">Retrying</span>' in response.content.decode()
    assert "2 / 5" in page and "emails" in page
    assert "3 min" in page and "2 min" in page  # age, duration
    assert "ValueError: boom" in page and "second line" not in page
    assert (
        '<progress max="100" value="40"></progress> 40% synced 400 of 1000'
        in response.content.decode()
    )
    assert "so far" in page  # a running job's duration


def test_list__filters_by_status_queue_name_and_created_date(client: Client) -> None:
    a = dead(queue="emails")
    b = JobFactory(name=RECORD, queue="emails")
    c = JobFactory(name=RECORD, created_at=timezone.now() - timedelta(days=30))

    def ids(query: str) -> set[int]:
        return {j.pk for j in client.get(f"{LIST}?{query}").context["cl"].result_list}

    assert ids("status__exact=dead") == {a.pk}
    assert ids("queue=emails") == {a.pk, b.pk}
    assert ids(f"name={RECORD}") == {b.pk, c.pk}
    (created,) = [s for s in client.get(LIST).context["cl"].filter_specs if s.title == "created at"]
    (today,) = [
        c for c in created.choices(client.get(LIST).context["cl"]) if c["display"] == "Today"
    ]
    assert ids(today["query_string"].lstrip("?")) == {a.pk, b.pk}


def test_list__queue_and_name_filters_offer_known_values_without_scanning_the_table(
    client: Client,
) -> None:
    JobFactory(queue="from-a-job", name="an.unregistered.name")
    Worker.objects.create(
        worker_id="w", hostname="h", pid=1, queues=["from-a-worker"], concurrency=1
    )
    Pause.objects.pause_queue("from-a-pause")

    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)

    choices = {
        spec.title: [c["display"] for c in spec.choices(response.context["cl"])]
        for spec in response.context["cl"].filter_specs
    }
    assert {"from-a-job", "from-a-worker", "from-a-pause", "default"} <= set(choices["queue"])
    assert {RECORD, FAIL, "tests.add", "an.unregistered.name"} <= set(choices["job name"])
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


def test_list__search_by_id_name_unique_key_or_error(client: Client) -> None:
    a = JobFactory(name=RECORD, unique_key="order-42")
    b = dead(last_error="TimeoutError: partner api")
    c = JobFactory(name="tests.add", unique_key="1234")

    def ids(term: str) -> set[int]:
        return {j.pk for j in client.get(LIST, {"q": term}).context["cl"].result_list}

    assert ids(str(a.pk)) == {a.pk}
    assert ids(f"#{b.pk}") == {b.pk}
    assert ids(str(c.pk)) == {c.pk}
    assert ids("99999999") == set()
    Job.objects.filter(pk=c.pk).update(unique_key="99999999")
    assert ids("99999999") == {c.pk}  # no job has that id: the unique key matches
    assert ids("order-42") == {a.pk}
    assert ids("partner api") == {b.pk}
    assert ids("tests.add") == {c.pk}


@pytest.mark.parametrize("url", [LIST, DEAD, bulk_url("retry")])
@pytest.mark.parametrize(
    "query",
    [
        {"q": "²"},  # a digit (str.isdigit) that int() refuses
        {"q": "#²"},
        {"priority": "99999999999999999999"},  # beyond the column: Django builds no SQL for it
        {"id": "99999999999999999999"},
        {"id__gte": "99999999999999999999"},
    ],
)
def test_list__odd_parameters_give_an_empty_list_not_a_500(
    client: Client, url: str, query: dict[str, str]
) -> None:
    dead()
    analyze()

    response = client.get(url, query)

    assert response.status_code == 200
    if url != bulk_url("retry"):
        assert list(response.context["cl"].result_list) == []
        assert response.context["cl"].result_count == 0


@pytest.mark.parametrize("url", [LIST, DEAD])
def test_list__an_empty_id_is_an_invalid_lookup_as_in_the_stock_admin(client: Client, url: str) -> None:
    response = client.get(url, {"id": ""}, follow=True)

    assert response.redirect_chain == [(f"{url}?e=1", 302)]
    assert response.status_code == 200


def test_list__a_search_for_a_number_in_another_script_finds_that_id(client: Client) -> None:
    job = JobFactory()
    arabic = str(job.pk).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))

    response = client.get(LIST, {"q": arabic})

    assert [j.pk for j in response.context["cl"].result_list] == [job.pk]


def count_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]


def test_list__never_counts_the_whole_table(client: Client) -> None:
    JobFactory.create_batch(3)
    analyze()

    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)

    assert response.status_code == 200
    assert "3 jobs" in text(response)
    assert "results" not in text(response)  # no "N results (Show all)" on an unfiltered list
    counts = count_queries(queries)
    assert counts, "expected a capped count"
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_list__beyond_the_exact_limit_the_count_is_the_planners_estimate(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 5)
    JobFactory.create_batch(40)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")

    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)

    assert re.search(r"about 4\d jobs", text(response)), text(response)[-300:]
    assert response.context["cl"].paginator.estimated
    assert not count_queries(queries)  # the estimate alone: no row is counted


def test_list__a_filter_matching_few_rows_is_counted_exactly(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 5)
    JobFactory.create_batch(40)
    dead(), dead()

    response = client.get(LIST, {"status__exact": "dead"})

    assert "2 jobs" in text(response) and "about" not in text(response)


# -- the job's page --------------------------------------------------------------------------------


def test_page__shows_arguments_and_result_as_pretty_json(client: Client) -> None:
    job = JobFactory(
        name="tests.add",
        args=[1, 2],
        kwargs={"label": "<b>x</b>"},
        status="succeeded",
        result={"total": 3},
    )

    page = client.get(change_url(job)).content.decode()

    assert '<pre class="dj-json">[\n  1,\n  2\n]</pre>' in page
    assert "&quot;label&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;" in page  # escaped, never markup
    assert '<pre class="dj-json">{\n  &quot;total&quot;: 3\n}</pre>' in page


def test_page__huge_json_is_truncated_and_says_so(client: Client) -> None:
    job = JobFactory(kwargs={"rows": ["x" * 100] * 500})

    response = client.get(change_url(job))

    page = response.content.decode()
    assert "Truncated: the first 10,000 of" in page
    assert page.count("x" * 100) < 500
    assert len(page) < 60_000


def test_page__lists_every_attempt_with_worker_timings_and_the_traceback(client: Client) -> None:
    traceback = 'Traceback (most recent call last):\n  File "jobs.py", line 3\nValueError: boom <3'
    job = dead(
        history=[
            {
                "attempt": 1,
                "worker": "host:11",
                "started_at": "2025-01-01T10:00:00+00:00",
                "finished_at": "2025-01-01T10:00:02.500000+00:00",
                "duration": 2.5,
                "outcome": "failed",
                "error": {
                    "class": "builtins.ValueError",
                    "message": "boom <3",
                    "traceback": traceback,
                },
                "retry_at": "2025-01-01T10:00:07+00:00",
            },
            {
                "attempt": 2,
                "worker": "host:12",
                "started_at": "2025-01-01T10:00:07+00:00",
                "finished_at": "2025-01-01T10:01:07+00:00",
                "outcome": "lost",
                "rescued_by": "host:13",
                "error": {
                    "class": "django_jobs.exceptions.WorkerLost",
                    "message": "gone",
                    "traceback": "",
                },
            },
            {"event": "dead-lettered", "at": "2025-01-01T11:00:00+00:00", "note": "partner gone"},
        ]
    )

    response = client.get(change_url(job))
    page = text(response)

    assert f'<pre class="dj-traceback">{html.escape(traceback)}</pre>' in response.content.decode()
    assert (
        "1 failed host:11 2025-01-01 10:00:00 2025-01-01 10:00:02 2.5 s builtins.ValueError: boom <3"
        in page
    )
    assert "next attempt due 2025-01-01 10:00:07" in page
    assert "2 lost host:12" in page and "rescued by: host:13" in page
    assert "dead-lettered" in page and "Note: partner gone" in page


def test_page__links_the_schedule_it_came_from(client: Client) -> None:
    schedule = Schedule(name="nightly", job_name=RECORD, cron="5 0 * * *", timezone="UTC")
    schedule.save()
    job = schedule.run_now()

    page = client.get(change_url(job)).content.decode()

    assert (
        f'<a href="{reverse("admin:django_jobs_schedule_change", args=[schedule.pk])}">nightly</a>'
        in page
    )


def test_page__shows_progress(client: Client) -> None:
    job = JobFactory(
        status="running",
        progress={
            "percent": 40,
            "message": "synced 400 of 1000 invoices",
            "at": timezone.now().isoformat(),
        },
    )

    page = text(client.get(change_url(job)))

    assert "40% synced 400 of 1000 invoices (reported" in page


def test_page__is_read_only_and_jobs_cannot_be_added(client: Client) -> None:
    job = JobFactory(name=RECORD)

    page = client.get(change_url(job)).content.decode()
    assert 'name="name"' not in page and 'name="_save"' not in page
    assert client.post(change_url(job), {"name": "other"}).status_code == 403
    assert client.get(reverse("admin:django_jobs_job_add")).status_code == 403
    assert Job.objects.get().name == RECORD


# -- why isn't it running? -------------------------------------------------------------------------


def test_why__a_waiting_job_says_what_holds_it_back(client: Client) -> None:
    job = JobFactory(queue="reports", run_at=timezone.now() + timedelta(hours=2))
    Pause.objects.pause_queue("reports", reason="migrating")

    page = text(client.get(change_url(job)))

    assert "Why isn't it running?" in page
    assert "It is scheduled to run at" in page and "(in 1 hour," in page
    assert "Its queue 'reports' is paused since" in page and "(migrating)" in page
    assert "No live worker serves the queue 'reports'" in page


def test_why__a_retrying_job_in_backoff_shows_its_last_error(client: Client) -> None:
    Worker.objects.create(worker_id="w", hostname="h", pid=1, queues=[], concurrency=1)
    job = JobFactory(
        status="retrying",
        attempts=1,
        max_attempts=3,
        last_error="ConnectionError: refused",
        run_at=timezone.now() + timedelta(minutes=5),
    )

    assert "Attempt 1 of 3 failed: ConnectionError: refused. The next attempt is due at" in text(
        client.get(change_url(job))
    )


def test_why__a_due_job_with_a_live_worker_should_start_any_moment(client: Client) -> None:
    Worker.objects.create(worker_id="w", hostname="h", pid=1, queues=["default"], concurrency=1)
    job = JobFactory()

    assert "it should start any moment" in text(client.get(change_url(job)))


def test_why__is_not_asked_of_a_finished_job(client: Client) -> None:
    assert "Why isn't it running?" not in text(client.get(change_url(dead())))


# -- one job: the buttons on its page --------------------------------------------------------------


def buttons(response: Any) -> list[str]:
    return re.findall(r'class="dj-tool dj-([a-z-]+)"', response.content.decode())


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "queued"}, ["stop", "dead-letter"]),
        ({"status": "retrying"}, ["retry", "stop", "dead-letter"]),
        ({"status": "running"}, ["stop"]),
        ({"status": "running", "stop_requested_at": timezone.now()}, []),
        ({"status": "stopped"}, ["retry", "dead-letter"]),
        ({"status": "dead"}, ["retry"]),
        ({"status": "succeeded"}, []),
    ],
)
def test_buttons__only_those_the_jobs_status_allows(
    client: Client, fields: dict[str, Any], expected: list[str]
) -> None:
    assert buttons(client.get(change_url(JobFactory(**fields)))) == expected


def test_button_retry__queues_a_dead_job_now_keeping_its_history(client: Client) -> None:
    job = dead(
        history=[{"attempt": 3, "outcome": "failed"}], run_at=timezone.now() - timedelta(days=1)
    )

    response = client.post(do_url(job, "retry"), follow=True)

    assert said(response) == [f"Job #{job.pk} retried."]
    job.refresh_from_db()
    assert (job.status, job.history, job.max_attempts) == (
        "queued",
        [{"attempt": 3, "outcome": "failed"}],
        6,
    )
    assert timezone.now() - job.run_at < timedelta(minutes=1)
    assert response.redirect_chain[-1][0] == change_url(job)


def test_button_retry__on_a_running_job_says_why_nothing_happened(client: Client) -> None:
    job = JobFactory(status="running")

    assert said(client.post(do_url(job, "retry"), follow=True)) == [
        f"Job #{job.pk} not retried: it is running."
    ]
    assert status(job) == "running"


def test_buttons__act_on_post_only(client: Client) -> None:
    job = dead()

    assert client.get(do_url(job, "retry")).status_code == 405
    assert client.get(do_url(job, "stop")).status_code == 405
    assert status(job) == "dead"


def test_button_stop__ends_a_queued_job_and_asks_a_running_one(client: Client) -> None:
    queued, running = JobFactory(), JobFactory(status="running")

    assert said(client.post(do_url(queued, "stop"), follow=True)) == [f"Job #{queued.pk} stopped."]
    assert said(client.post(do_url(running, "stop"), follow=True)) == [
        f"Job #{running.pk} asked to stop."
    ]

    queued.refresh_from_db()
    assert (queued.status, queued.last_error) == ("stopped", "stopped by admin in the admin")
    assert Job.objects.get(pk=running.pk).stop_requested_at is not None


def test_button_dead_letter__asks_for_a_note_then_dead_letters(client: Client) -> None:
    job = JobFactory(status="retrying")

    form = client.get(do_url(job, "dead-letter"))
    assert form.status_code == 200 and 'name="note"' in form.content.decode()
    assert "1 of 1 job will be dead-lettered; 0 skipped." in text(form)
    assert status(job) == "retrying"

    response = client.post(
        do_url(job, "dead-letter"), {"note": "partner closed the account"}, follow=True
    )

    assert said(response) == [f"Job #{job.pk} dead-lettered."]
    job.refresh_from_db()
    assert (job.status, job.last_error) == (
        "dead",
        "dead-lettered by an operator: partner closed the account",
    )
    assert job.history[-1]["note"] == "partner closed the account"


def test_delete__through_djangos_confirmation_page(client: Client) -> None:
    job = dead()
    url = reverse("admin:django_jobs_job_delete", args=[job.pk])

    assert "Are you sure" in text(client.get(url))
    assert Job.objects.exists()
    client.post(url, {"post": "yes"})
    assert not Job.objects.exists()


# -- a selection: the changelist actions -----------------------------------------------------------


def act(client: Client, action: str, jobs: list[Job], url: str = LIST, **extra: Any) -> Any:
    return client.post(
        url, {"action": action, "_selected_action": [j.pk for j in jobs], **extra}, follow=True
    )


def impact(response: Any) -> list[tuple[str, str, int, str]]:
    return [(r["name"], r["status"], r["count"], r["outcome"]) for r in response.context["rows"]]


def test_action_retry__confirms_with_counts_then_reports_what_it_skipped(client: Client) -> None:
    jobs = [
        dead(),
        dead(),
        JobFactory(name=RECORD, status="stopped"),
        JobFactory(name=RECORD, status="running"),
    ]

    confirm = act(client, "retry_jobs", jobs, index=0)

    assert impact(confirm) == [
        (FAIL, "dead", 2, "retried"),
        (RECORD, "running", 1, "skipped: it is running"),
        (RECORD, "stopped", 1, "retried"),
    ]
    assert "3 of 4 jobs will be retried; 1 skipped." in text(confirm)
    assert [status(j) for j in jobs] == ["dead", "dead", "stopped", "running"]

    done = act(client, "retry_jobs", jobs, confirm="yes")

    assert said(done) == ["3 jobs retried; 1 skipped: it is running."]
    assert [status(j) for j in jobs] == ["queued", "queued", "queued", "running"]


def test_action_retry__skip_reasons_are_counted_by_status(client: Client) -> None:
    jobs = [
        dead(),
        JobFactory(status="running"),
        JobFactory(status="running"),
        JobFactory(finished=True),
    ]

    assert said(act(client, "retry_jobs", jobs, confirm="yes")) == [
        "1 job retried; 2 skipped: they are running; 1 skipped: it succeeded."
    ]


def test_action_stop__stops_waiting_jobs_asks_running_ones_and_skips_finished(
    client: Client,
) -> None:
    jobs = [JobFactory(), JobFactory(status="retrying"), JobFactory(status="running"), dead()]

    assert said(act(client, "stop_jobs", jobs, confirm="yes")) == [
        "2 jobs stopped; 1 running job asked to stop; 1 skipped: it is dead."
    ]
    assert [status(j) for j in jobs] == ["stopped", "stopped", "running", "dead"]


def test_action_dead_letter__takes_the_note_from_the_confirmation_page(client: Client) -> None:
    jobs = [JobFactory(), JobFactory(status="stopped"), JobFactory(status="running")]

    confirm = act(client, "dead_letter_jobs", jobs, index=0)
    assert 'name="note"' in confirm.content.decode()

    done = act(client, "dead_letter_jobs", jobs, confirm="yes", note="duplicate import")

    assert said(done) == ["2 jobs dead-lettered; 1 skipped: it is running: stop it first."]
    assert {Job.objects.get(pk=j.pk).last_error for j in jobs[:2]} == {
        "dead-lettered by an operator: duplicate import"
    }


def test_action_delete__uses_djangos_confirmation(client: Client) -> None:
    jobs = [dead(), dead()]

    assert "Are you sure" in text(act(client, "delete_selected", jobs, index=0))
    act(client, "delete_selected", jobs, post="yes")
    assert not Job.objects.exists()


def test_action__select_all_goes_to_the_page_for_every_matching_job(client: Client) -> None:
    jobs = [dead(), dead()]

    response = client.post(
        f"{LIST}?status__exact=dead",
        {
            "action": "retry_jobs",
            "_selected_action": [j.pk for j in jobs],
            "select_across": "1",
            "index": 0,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == bulk_url("retry", "status__exact=dead")


# -- every job matching a filter ------------------------------------------------------------------


def test_list__offers_to_act_on_every_matching_job_with_the_current_filters(client: Client) -> None:
    page = client.get(f"{LIST}?status__exact=dead&q=boom&p=2&o=1").content.decode()

    assert (
        f'href="{html.escape(bulk_url("retry", "status__exact=dead&amp;q=boom"), quote=False)}"'
        in page
        or f'href="{bulk_url("retry", "status__exact=dead&q=boom").replace("&", "&amp;")}"' in page
    )


def test_retry_all_matching__counts_the_matches_then_retries_them_in_batches(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "TRANSITION_BATCH", 2)
    matching = [dead() for _ in range(5)]
    running = JobFactory(name=FAIL, status="running")
    other_name = dead(name=RECORD)
    query = f"name={FAIL}"

    confirm = client.get(bulk_url("retry", query))

    assert impact(confirm) == [
        (FAIL, "dead", 5, "retried"),
        (FAIL, "running", 1, "skipped: it is running"),
    ]
    assert "5 of 6 jobs will be retried; 1 skipped." in text(confirm)
    assert "name = " + FAIL in text(confirm)

    done = client.post(bulk_url("retry", query), follow=True)

    assert said(done) == ["5 jobs retried; 1 skipped: it is running."]
    assert [status(j) for j in matching] == ["queued"] * 5
    assert (status(running), status(other_name)) == ("running", "dead")
    assert done.redirect_chain[-1][0] == f"{LIST}?{query}"


def test_stop_all_matching__a_search_narrows_it(client: Client) -> None:
    a = JobFactory(name=RECORD, unique_key="batch-7-a")
    b = JobFactory(name=RECORD, unique_key="batch-7-b")
    c = JobFactory(name=RECORD, unique_key="batch-8-a")

    response = client.post(bulk_url("stop", "q=batch-7"), follow=True)

    assert said(response) == ["2 jobs stopped."]
    assert [status(j) for j in (a, b, c)] == ["stopped", "stopped", "queued"]


def test_dead_letter_all_matching__needs_no_note_but_takes_one(client: Client) -> None:
    job = JobFactory(queue="imports")

    assert 'name="note"' in client.get(bulk_url("dead-letter", "queue=imports")).content.decode()
    client.post(bulk_url("dead-letter", "queue=imports"), {"note": ""})

    assert Job.objects.get(pk=job.pk).last_error == "dead-lettered"


# -- dead letters ----------------------------------------------------------------------------------


def test_dead_letters__grouped_by_name_and_error_newest_first_with_counts(client: Client) -> None:
    now = timezone.now()
    dead(last_error="ValueError: boom", finished_at=now - timedelta(hours=2))
    dead(last_error="ValueError: boom", finished_at=now - timedelta(hours=1))
    dead(name=RECORD, last_error="KeyError: 'sku'", finished_at=now - timedelta(minutes=5))
    dead(last_error="TimeoutError: partner", finished_at=now - timedelta(days=1))
    JobFactory(status="retrying", last_error="ValueError: boom")  # not dead: not listed

    response = client.get(DEAD)

    groups = [(g["name"], g["error"], g["count"]) for g in response.context["groups"]]
    assert groups == [
        (RECORD, "KeyError: 'sku'", 1),
        (FAIL, "ValueError: boom", 2),
        (FAIL, "TimeoutError: partner", 1),
    ]
    assert len(response.context["cl"].result_list) == 4


def test_dead_letters__a_groups_link_lists_its_jobs(client: Client) -> None:
    a, b = dead(last_error="ValueError: boom"), dead(last_error="ValueError: boom")
    dead(last_error="other")

    (group,) = [g for g in client.get(DEAD).context["groups"] if g["error"] == "ValueError: boom"]
    listed = client.get(group["list_url"]).context["cl"].result_list

    assert {j.pk for j in listed} == {a.pk, b.pk}


def test_dead_letters__requeue_a_whole_group(client: Client) -> None:
    boom = [dead(last_error="ValueError: boom") for _ in range(3)]
    other = dead(last_error="KeyError: 'x'", finished_at=timezone.now() - timedelta(days=1))

    group = client.get(DEAD).context["groups"][0]
    confirm = client.get(group["retry_url"])
    assert impact(confirm) == [(FAIL, "dead", 3, "retried")]

    response = client.post(group["retry_url"], follow=True)

    assert said(response) == ["3 jobs retried."]
    assert [status(j) for j in boom] == ["queued"] * 3 and status(other) == "dead"


def test_dead_letters__requeue_the_selected(client: Client) -> None:
    a, b, c = dead(), dead(), dead()

    response = act(client, "retry_jobs", [a, b], url=DEAD, confirm="yes")

    assert said(response) == ["2 jobs retried."]
    assert [status(j) for j in (a, b, c)] == ["queued", "queued", "dead"]


def test_dead_letters__a_dead_letters_page_is_its_jobs_page(client: Client) -> None:
    job = dead()

    response = client.get(reverse("admin:django_jobs_deadletter_change", args=[job.pk]))

    assert response.status_code == 200 and buttons(response) == ["retry"]


def test_dead_letters__no_other_verb_than_retry(client: Client) -> None:
    assert client.get(bulk_url("stop", model="deadletter")).status_code == 404


# -- who may do what -------------------------------------------------------------------------------


def test_viewer__sees_the_list_and_the_page_without_buttons_or_actions(viewer: Client) -> None:
    job = dead()

    listing = viewer.get(LIST)
    page = viewer.get(change_url(job))

    assert listing.status_code == page.status_code == 200
    assert buttons(page) == [] and buttons(listing) == []
    assert 'name="action"' not in listing.content.decode()
    assert viewer.get(DEAD).context["groups"][0]["retry_url"] is None


def links(response: Any) -> list[str]:
    """Every link of an admin page that stays in the admin, once each."""
    hrefs = re.findall(r'href="([^"]+)"', response.content.decode())
    admin = reverse("admin:index")
    found = [html.unescape(h) for h in hrefs]
    return list(dict.fromkeys(h for h in found if h.startswith(("?", admin)) and "logout" not in h))


@pytest.mark.parametrize("perms", [("view_deadletter",), ("view_deadletter", "retry_job")])
def test_dead_letters_viewer__every_link_on_the_page_and_on_a_dead_letters_page_answers(
    db: None, perms: tuple[str, ...]
) -> None:
    # Dead letters only: not view_job, not view_schedule.
    client = login(*perms, name="dead-letters-only")
    schedule = Schedule.objects.create(name="nightly", job_name=RECORD, cron="0 * * * *")
    job = dead(schedule=schedule, scheduled_for=timezone.now(), last_error="ValueError: boom")
    dead(last_error="KeyError: other")

    listing = client.get(DEAD)
    assert listing.status_code == 200
    page_url = reverse("admin:django_jobs_deadletter_change", args=[job.pk])
    assert page_url in links(listing)
    page = client.get(page_url)
    assert page.status_code == 200
    assert "ValueError: boom" in text(page) and "nightly" in text(page)

    followed = []
    for response, base in ((listing, DEAD), (page, page_url)):
        for link in links(response):
            url = base + link if link.startswith("?") else link
            assert client.get(url).status_code == 200, url
            followed.append(url)
    assert reverse("admin:django_jobs_deadletter_history", args=[job.pk]) in followed
    assert any("last_error=" in url for url in followed)  # a group's link to its jobs
    if "retry_job" in perms:
        assert bulk_url("retry", model="deadletter") in " ".join(followed)
        retried = client.post(reverse("admin:django_jobs_deadletter_one", args=[job.pk, "retry"]), follow=True)
        assert retried.redirect_chain == [(DEAD, 302)] and status(job) == "queued"


def test_dead_letters__a_retried_dead_letters_page_leads_to_the_job_for_who_may_see_jobs(
    client: Client,
) -> None:
    job = dead()
    job.__class__.objects.filter(pk=job.pk).update(status="queued")

    response = client.get(reverse("admin:django_jobs_deadletter_change", args=[job.pk]))

    assert response.status_code == 200 and "Queued" in text(response)


@pytest.mark.parametrize("slug", ["retry", "stop", "dead-letter"])
def test_viewer__cannot_act_on_one_job_or_on_all_matching(viewer: Client, slug: str) -> None:
    job = JobFactory(status="stopped")

    assert viewer.post(do_url(job, slug)).status_code == 403
    assert viewer.post(bulk_url(slug)).status_code == 403
    assert viewer.get(bulk_url(slug)).status_code == 403
    assert status(job) == "stopped"


def test_viewer__a_posted_action_is_refused(viewer: Client) -> None:
    job = dead()

    assert act(viewer, "retry_jobs", [job], confirm="yes").status_code == 403
    assert act(viewer, "delete_selected", [job], post="yes").status_code == 403
    assert status(job) == "dead"


def test_permissions__each_verb_needs_its_own(db: None) -> None:
    retrier = login("view_job", "retry_job", name="retrier")
    a, b = dead(), JobFactory()

    assert buttons(retrier.get(change_url(a))) == ["retry"]
    assert buttons(retrier.get(change_url(b))) == []
    assert retrier.post(do_url(b, "stop")).status_code == 403
    assert said(retrier.post(do_url(a, "retry"), follow=True)) == [f"Job #{a.pk} retried."]
    assert act(retrier, "stop_jobs", [b], confirm="yes").status_code == 403
    assert status(b) == "queued"


def test_permissions__staff_without_job_permissions_see_nothing(db: None) -> None:
    staff = login(name="staff")

    assert staff.get(LIST).status_code == 403
    assert staff.get(change_url(dead())).status_code == 403


def test_permissions__non_staff_are_sent_to_the_login_page(db: None) -> None:
    user = login("view_job", "retry_job", staff=False, name="customer")
    job = dead()

    for response in (user.get(LIST), user.post(do_url(job, "retry")), user.post(bulk_url("retry"))):
        assert response.status_code == 302 and "/login/" in response["Location"]
    assert status(job) == "dead"


def test_csrf__a_post_without_the_token_is_refused(db: None) -> None:
    user = User.objects.create_superuser("csrf", "csrf@example.com", "pw")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    job = dead()

    assert strict.post(do_url(job, "retry")).status_code == 403
    assert strict.post(bulk_url("retry")).status_code == 403
    assert status(job) == "dead"


# -- pauses ----------------------------------------------------------------------------------------


def test_pause__added_and_lifted_in_the_admin(client: Client) -> None:
    add = reverse("admin:django_jobs_pause_add")
    assert 'list="django-jobs-pausable"' in client.get(add).content.decode()

    response = client.post(add, {"kind": "queue", "value": "emails", "reason": "SMTP outage"})

    assert response.status_code == 302
    pause = Pause.objects.get()
    assert (pause.kind, pause.value, pause.reason) == ("queue", "emails", "SMTP outage")
    assert "Its queue 'emails' is paused" in text(
        client.get(change_url(JobFactory(queue="emails")))
    )

    client.post(reverse("admin:django_jobs_pause_delete", args=[pause.pk]), {"post": "yes"})
    assert not Pause.objects.exists()


def test_pause__is_not_edited(client: Client) -> None:
    pause = Pause.objects.pause_job(RECORD)

    url = reverse("admin:django_jobs_pause_change", args=[pause.pk])
    assert client.post(url, {"kind": "queue", "value": "x"}).status_code == 403
    assert 'name="value"' not in client.get(url).content.decode()
