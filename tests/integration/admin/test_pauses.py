"""admin/pauses.py: pauses are added and lifted in the admin, never edited."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from django_jobs.models import Pause
from tests.support.admin import RECORD, change_url, text
from tests.support.factories import JobFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("only_our_schedules")]


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


def test_pause__an_unregistered_job_name_is_refused_on_the_form_with_did_you_mean(client: Client) -> None:
    add = reverse("admin:django_jobs_pause_add")

    response = client.post(add, {"kind": "name", "value": "tests.testapp.jobs.recrod", "reason": ""})

    assert response.status_code == 200
    assert "Did you mean &#x27;tests.testapp.jobs.record&#x27;?" in response.content.decode()
    assert not Pause.objects.exists()
