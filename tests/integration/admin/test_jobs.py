"""admin/jobs.py: the list, the job's page, why a job isn't running, dead letters, and who may do
what."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs.models import Job, Pause, Schedule, Worker
from tests.support.admin import (
    DEAD,
    FAIL,
    LIST,
    RECORD,
    act,
    analyze,
    bulk_url,
    buttons,
    change_url,
    dead,
    do_url,
    impact,
    login,
    said,
    status,
    text,
)
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _only_our_rows(db: None) -> None:
    # Migrations of other apps may seed schedules (the example shop's nightly sync).
    Schedule.objects.all().delete()


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


def test_list__a_text_search_looks_at_the_newest_jobs_and_links_to_every_one(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_jobs.admin.jobs import JobAdmin

    old = JobFactory(unique_key="order-7")
    newer = [JobFactory(unique_key=f"order-{i}") for i in range(10, 15)]
    monkeypatch.setattr(JobAdmin, "search_window", 3)

    response = client.get(LIST, {"q": "order-"})
    cl = response.context["cl"]
    assert {j.pk for j in cl.result_list} == {j.pk for j in newer[-3:]}
    assert cl.search_from == newer[-3].pk
    page = html.unescape(response.content.decode())
    assert f"Searched the newest jobs, #{newer[-3].pk} and later." in page
    assert "search_all=1" in cl.search_all_url and "q=order-" in cl.search_all_url

    everything = client.get(LIST + cl.search_all_url)
    assert everything.status_code == 200
    assert {j.pk for j in everything.context["cl"].result_list} == {old.pk, *(j.pk for j in newer)}
    assert everything.context["cl"].search_from is None
    assert client.get(LIST, {"q": f"#{old.pk}"}).context["cl"].result_list[0].pk == old.pk  # an id: anywhere
    assert client.get(LIST, {"q": "order-7"}).context["cl"].result_count == 0  # older than the window


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


def test_page__shows_the_flow_control_keys_it_has_each_linked_to_its_jobs(client: Client) -> None:
    keyed = JobFactory(concurrency_key="account:7", sequence_key="customer:<42>")
    plain = JobFactory()

    page = client.get(change_url(keyed)).content.decode()

    assert "Flow control" in page and "Concurrency key" in page and "Sequence key" in page
    assert "Rate key" not in page  # only the keys it has
    assert "<code>customer:&lt;42&gt;</code>" in page  # escaped, never markup
    assert f'href="{LIST}?sequence_key=customer%3A%3C42%3E"' in page
    assert "Flow control" not in client.get(change_url(plain)).content.decode()


def test_page__a_dead_job_says_it_blocks_its_sequence(client: Client) -> None:
    from tests.testapp import jobs

    dead = jobs.apply_webhook.enqueue("c_9", 1)
    jobs.apply_webhook.enqueue("c_9", 2)
    jobs.apply_webhook.enqueue("c_9", 3)
    Job.objects.filter(id=dead.id).update(status="dead")

    page = client.get(change_url(dead)).content.decode()
    assert "This dead job blocks its sequence:</strong> 2 later job(s) wait behind it." in page
    Job.objects.filter(id=dead.id).update(status="stopped")
    assert "blocks its sequence" not in client.get(change_url(dead)).content.decode()


def test_page__huge_json_is_truncated_and_says_so(client: Client) -> None:
    job = JobFactory(kwargs={"rows": ["x" * 100] * 500})

    response = client.get(change_url(job))

    page = response.content.decode()
    assert "Truncated: the first 10,000 of" in page
    assert page.count("x" * 100) < 500
    assert len(page) < 60_000


def test_page__a_failed_jobs_last_error_and_latest_traceback_come_first(client: Client) -> None:
    job = dead(last_error="ValueError: boom", history=[
        {"attempt": 1, "worker": "host:11", "outcome": "failed",
         "error": {"class": "builtins.ValueError", "message": "old", "traceback": "Traceback: old"}},
        {"attempt": 2, "worker": "host:11", "outcome": "failed",
         "error": {"class": "builtins.ValueError", "message": "boom", "traceback": "Traceback: newest"}},
    ])

    response = client.get(change_url(job))

    assert response.context["adminform"].fieldsets[0][0] == "Last error"
    page = response.content.decode()
    assert page.index('<pre class="dj-traceback dj-last">Traceback: newest</pre>') < page.index("ID:")
    assert "<details open>" not in page  # the history's copy of it stays folded


def test_page__a_result_not_stored_says_why_in_the_history(client: Client) -> None:
    job = JobFactory(status="succeeded", attempts=1, finished_at=timezone.now(), history=[
        {"attempt": 1, "worker": "host:11", "outcome": "succeeded", "result_unstorable": True,
         "warning": "the return value is a datetime, which doesn't survive a JSON round trip"},
    ])

    page = text(client.get(change_url(job)))

    assert "warning: the return value is a datetime, which doesn't survive a JSON round trip" in page


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


# -- a selection: the changelist actions -----------------------------------------------------------


# -- every job matching a filter ------------------------------------------------------------------


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
