"""The admin, one module per page; importing this package (Django's admin autodiscovery does)
registers every page.

- ``jobs``: the job list, a job's page, and the dead letters grouped by error;
- ``verbs``: retry, stop and dead-letter, with their confirmation pages;
- ``schedules``: the cron schedules, with their preview;
- ``pauses``: the paused queues and job names;
- ``limits``: the operators' concurrency and rate limits, beside those declared in code;
- ``overview``: every queue, worker and pause on one screen;
- ``display``, ``filters``, ``paginator``: what those pages share.
"""

from __future__ import annotations

from django.contrib import admin

from ..models import DeadLetter, Job, Limit, Pause, QueueOverview, Schedule
from .jobs import DeadLetterAdmin, JobAdmin
from .limits import LimitAdmin
from .overview import QueueOverviewAdmin
from .pauses import PauseAdmin
from .schedules import ScheduleAdmin

admin.site.register(QueueOverview, QueueOverviewAdmin)
admin.site.register(Schedule, ScheduleAdmin)
admin.site.register(Job, JobAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)
admin.site.register(Pause, PauseAdmin)
admin.site.register(Limit, LimitAdmin)

__all__ = ["DeadLetterAdmin", "JobAdmin", "LimitAdmin", "PauseAdmin", "QueueOverviewAdmin", "ScheduleAdmin"]
