"""conf.py: DJANGO_JOBS read at attribute access, over the defaults."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_jobs.conf import DEFAULTS, jobs_settings


def test_jobs_settings__an_override_takes_effect_at_the_next_attribute_access() -> None:
    before = jobs_settings.POLL_INTERVAL  # read once: now cached

    with override_settings(DJANGO_JOBS={"POLL_INTERVAL": 7.5}):
        assert jobs_settings.POLL_INTERVAL == 7.5
        assert jobs_settings.MAIL_ADMINS_INTERVAL == DEFAULTS["MAIL_ADMINS_INTERVAL"]  # not overridden

    assert jobs_settings.POLL_INTERVAL == before


def test_jobs_settings__an_unknown_key_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="POLL_INTERVALL"):
        jobs_settings.POLL_INTERVALL  # noqa: B018 - the read is what is tested
