"""The admin's pages as a test sees them: logged-in clients, URLs, the page's text and messages."""

from __future__ import annotations

import html
import re
from typing import Any

from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs.models import Job
from tests.support.factories import JobFactory

LIST = reverse("admin:django_jobs_job_changelist")
DEAD = reverse("admin:django_jobs_deadletter_changelist")
RECORD = "tests.testapp.jobs.record"
FAIL = "tests.testapp.jobs.fail_always"


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


def buttons(response: Any) -> list[str]:
    return re.findall(r'class="dj-tool dj-([a-z-]+)"', response.content.decode())


def act(client: Client, action: str, jobs: list[Job], url: str = LIST, **extra: Any) -> Any:
    return client.post(
        url, {"action": action, "_selected_action": [j.pk for j in jobs], **extra}, follow=True
    )


def impact(response: Any) -> list[tuple[str, str, int, str]]:
    return [(r["name"], r["status"], r["count"], r["outcome"]) for r in response.context["rows"]]
