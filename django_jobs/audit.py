"""The audit trail: a Django admin ``LogEntry`` for each object an operator acted on.

The admin and ``manage.py jobs`` call these after a verb changed something, so each entry shows
in the admin's "Recent actions" and on the object's history page. Nothing is logged for what a
verb refused or skipped: only the objects it changed. The worker and the storage layer never
log here (the layers forbid it): an entry is an operator's, and it needs a user.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

from django.apps import apps
from django.db import models

from .models import Job, Transitioned

__all__ = ["ADDITION", "CHANGE", "DELETION", "enabled", "find_user", "log_jobs", "log_objects"]

# django.contrib.admin.models' action flags, repeated so that importing this module (every
# `manage.py jobs` does) doesn't import the admin's models: a project without the admin, or
# without contenttypes, can't load them, and its `manage.py jobs` must still work.
ADDITION, CHANGE, DELETION = 1, 2, 3

#: How long LogEntry.object_repr may be.
REPR_MAX_LENGTH = 200
#: Entries per INSERT: one statement for any selection an operator confirms page by page, and
#: under PostgreSQL's 65,535 parameters (7 a row) with server-side binding for the huge ones.
INSERT_BATCH = 5000


def enabled() -> bool:
    """Whether the project can keep an audit trail: the admin (its LogEntry), auth and contenttypes."""
    return all(apps.is_installed(app) for app in (
        "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes"
    ))


def find_user(username: str) -> Any | None:
    """The active user of that username (the user model's USERNAME_FIELD), or None (also when
    the project has no audit trail: see enabled())."""
    if not username or not enabled():
        return None
    from django.contrib.auth import get_user_model

    model = get_user_model()
    users = model._default_manager.filter(**{model.USERNAME_FIELD: username})
    # A custom user model may have no is_active column (AbstractBaseUser's is a constant True).
    if any(f.name == "is_active" for f in model._meta.concrete_fields):
        users = users.filter(is_active=True)
    return users.first()


def log_jobs(user: Any, result: Transitioned, message: str) -> int:
    """One CHANGE entry per job ``result`` changed, in bulk inserts (not a save each); return how many.

    As ``LogEntry.objects.log_actions()`` writes them, except that the jobs aren't loaded: the
    entry's text is "#id name" (a job's status would be stale the moment it is written).
    """
    if user is None or not result.changed or not enabled():
        return 0
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(Job)
    changed = iter(result.changed.items())
    # Built and inserted INSERT_BATCH at a time: a retry of a million jobs from the command line
    # never holds a million unsaved entries.
    while chunk := list(islice(changed, INSERT_BATCH)):
        LogEntry.objects.bulk_create([
            LogEntry(
                user_id=user.pk,
                content_type_id=content_type.pk,
                object_id=str(pk),
                object_repr=f"#{pk} {name}"[:REPR_MAX_LENGTH],
                action_flag=CHANGE,
                change_message=message,
            )
            for pk, name in chunk
        ])
    return len(result.changed)


def log_objects(user: Any, objects: Iterable[models.Model], flag: int, message: str) -> None:
    """One entry of ``flag`` (ADDITION, CHANGE, DELETION) per object, with ``message``."""
    objects = list(objects)
    if user is None or not objects or not enabled():
        return
    from django.contrib.admin.models import LogEntry

    LogEntry.objects.log_actions(user.pk, objects, flag, change_message=message)
