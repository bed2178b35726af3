"""Seed the schedule of the nightly Stripe order sync: 00:05 every day, in settings.TIME_ZONE.

An ordinary admin-owned row (``source=admin``): operators may edit its time, arguments or
timezone, disable it or run it now, and a later deploy never overwrites what they changed.
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

SCHEDULE_NAME = "Nightly Stripe order sync"
JOB_NAME = "shop.sync_stripe_orders"
CRON = "5 0 * * *"


def seed_schedule(apps, schema_editor):
    # The historical model has none of Schedule.save()'s logic, so compute the first tick here
    # with the scheduler's own helper: a row without next_run_at would never fire.
    from django_jobs import cron

    Schedule = apps.get_model("django_jobs", "Schedule")
    zone = settings.TIME_ZONE or "UTC"
    Schedule.objects.using(schema_editor.connection.alias).get_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "job_name": JOB_NAME,
            "cron": CRON,
            "timezone": zone,
            "enabled": True,
            "next_run_at": cron.next_after(CRON, zone, timezone.now()),
        },
    )


def remove_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_jobs", "Schedule")
    Schedule.objects.using(schema_editor.connection.alias).filter(
        name=SCHEDULE_NAME, job_name=JOB_NAME
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("shop", "0001_initial"),
        ("django_jobs", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(seed_schedule, remove_schedule),
    ]
