"""checks.py: each system check ID fires for a bad ``DJANGO_JOBS`` and stays quiet for good ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import Error, Warning
from django.db.utils import ConnectionHandler
from django.test import override_settings

from django_jobs import checks
from django_jobs.conf import DEFAULTS


def run_checks(value: Any) -> list[Any]:
    with override_settings(DJANGO_JOBS=value):
        return checks.check_settings()


def ids(value: Any) -> list[str]:
    return [message.id for message in run_checks(value)]


def only(value: Any) -> Any:
    (message,) = run_checks(value)
    return message


# -- good settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"POLL_INTERVAL": 0.2},
        dict(DEFAULTS),
        {
            "DATABASE": "default", "DEFAULT_QUEUE": "main", "DEFAULT_MAX_ATTEMPTS": 1,
            "DEFAULT_TIMEOUT": 0.5, "BACKOFF_BASE": 0, "BACKOFF_FACTOR": 1, "BACKOFF_MAX": 0,
            "BACKOFF_JITTER": 1, "MAX_PAYLOAD_BYTES": 1, "POLL_INTERVAL": 0.01,
            "LISTEN_NOTIFY": False, "CONCURRENCY": 4, "RECONNECT_BACKOFF": 0.01,
        },
        {"DEFAULT_TIMEOUT": None, "CONCURRENCY": None, "BACKOFF_JITTER": 0, "MAX_LOST": None},
        {
            "HEARTBEAT_INTERVAL": 1, "RESCUE_AFTER": 3, "STOP_GRACE": 0, "PRUNE_BATCH": 1,
            "PRUNE_INTERVAL": 0.01, "PREPARE_STATEMENTS": False,
            "RETENTION": {"succeeded": 3600, "stopped": None, "dead": timedelta(days=30)},
        },
        {"RETENTION": None},
        {"RETENTION": {}},
        {"RETENTION": {"dead": 0, "succeeded": None, "stopped": None}},
        {"IMPORTS": ["shop.billing.tasks"], "ADMIN_BASE_URL": "https://ops.example.com"},
        {"CHARTS_MINUTE_RETENTION": 3600, "CHARTS_HOUR_RETENTION": timedelta(days=365)},
    ],
)
def test_check_settings__good_settings_pass(value: dict[str, Any]) -> None:
    assert run_checks(value) == []


def test_check_settings__no_django_jobs_setting_at_all_passes() -> None:
    with override_settings():
        del settings.DJANGO_JOBS
        assert checks.check_settings() == []


# -- E001 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, [], "POLL_INTERVAL=1", 3])
def test_e001__django_jobs_must_be_a_dict(value: Any) -> None:
    message = only(value)

    assert isinstance(message, Error) and message.id == "django_jobs.E001"
    assert message.msg == f"DJANGO_JOBS must be a dict, not {type(value).__name__}."
    assert "DJANGO_JOBS = {" in message.hint


# -- E002 ------------------------------------------------------------------------------------


def test_e002__unknown_key_suggests_the_close_one() -> None:
    message = only({"POLL_INTERVALL": 1.0})

    assert message.id == "django_jobs.E002"
    assert message.msg == "DJANGO_JOBS has an unknown key 'POLL_INTERVALL'."
    assert message.hint == "Did you mean 'POLL_INTERVAL'?"


def test_e002__unknown_key_with_nothing_close_lists_the_known_ones() -> None:
    message = only({"WHATEVER": 1})

    assert message.id == "django_jobs.E002"
    assert message.hint.startswith("Known keys: DATABASE, DEFAULT_QUEUE")


def test_e002__one_error_per_unknown_key() -> None:
    assert ids({"A_KEY": 1, "B_KEY": 2, "POLL_INTERVAL": 1}) == ["django_jobs.E002"] * 2


# -- E003 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "bad", "rule"),
    [
        ("DEFAULT_MAX_ATTEMPTS", 0, "a number >= 1"),
        ("BACKOFF_BASE", -1, "a number >= 0"),
        ("BACKOFF_FACTOR", 0.5, "a number >= 1"),
        ("BACKOFF_MAX", -0.1, "a number >= 0"),
        ("MAX_PAYLOAD_BYTES", 0, "a number >= 1"),
        ("POLL_INTERVAL", 0, "a number >= 0.01"),
        ("RECONNECT_BACKOFF", 0.001, "a number >= 0.01"),
        ("POLL_INTERVAL", "1", "a number >= 0.01"),
        ("POLL_INTERVAL", True, "a number >= 0.01"),
        ("POLL_INTERVAL", None, "a number >= 0.01"),
        ("BACKOFF_JITTER", 1.5, "between 0 and 1"),
        ("BACKOFF_JITTER", -0.1, "between 0 and 1"),
        ("BACKOFF_JITTER", "0.1", "between 0 and 1"),
        ("DEFAULT_TIMEOUT", 0, "positive seconds or None"),
        ("DEFAULT_TIMEOUT", "30", "positive seconds or None"),
        ("CONCURRENCY", 0, "a whole number >= 1 or None"),
        ("CONCURRENCY", 2.5, "a whole number >= 1 or None"),
        ("CONCURRENCY", True, "a whole number >= 1 or None"),
        ("CONCURRENCY", 257, "at most 256 child processes"),
        ("DEFAULT_QUEUE", "", "a non-empty string"),
        ("DEFAULT_QUEUE", 5, "a non-empty string"),
        ("LISTEN_NOTIFY", 1, "True or False"),
        ("LISTEN_NOTIFY", "yes", "True or False"),
        ("PREPARE_STATEMENTS", "no", "True or False"),
        ("HEARTBEAT_INTERVAL", 0, "a number >= 0.01"),
        ("RESCUE_AFTER", -1, "a number >= 0.01"),
        ("STOP_GRACE", -1, "a number >= 0"),
        ("PRUNE_INTERVAL", 0, "a number >= 0.01"),
        ("PRUNE_BATCH", 0, "a whole number >= 1"),
        ("MAX_LOST", 0, "a whole number >= 1 or None"),
        ("MAX_LOST", 1.5, "a whole number >= 1 or None"),
        ("PRUNE_BATCH", 2.5, "a whole number >= 1"),
        ("PRUNE_BATCH", None, "a whole number >= 1"),
        ("RETENTION", [3600], "a dict or None"),
        ("RETENTION", {"succeded": 3600}, "the keys are finished statuses: succeeded, stopped, dead"),
        ("RETENTION", {"dead": -1}, "seconds >= 0, a timedelta, or None"),
        ("MAIL_ADMINS_INTERVAL", -1, "a number >= 0"),
        ("MAIL_ADMINS_ON_DEAD", "yes", "True or False"),
        ("RETENTION", {"dead": "30d"}, "seconds >= 0, a timedelta, or None"),
        ("RETENTION", {"dead": timedelta(days=-1)}, "seconds >= 0, a timedelta, or None"),
        ("IMPORTS", "shop.billing.tasks", "a list of module paths"),
        ("IMPORTS", ["shop.tasks", None], "a list of module paths"),
        ("CHARTS_MINUTE_RETENTION", 60, "seconds >= 3600 or a timedelta of at least an hour"),
        ("CHARTS_MINUTE_RETENTION", None, "seconds >= 3600 or a timedelta of at least an hour"),
        ("CHARTS_HOUR_RETENTION", timedelta(minutes=5), "seconds >= 3600 or a timedelta of at least an hour"),
        ("CHARTS_HOUR_RETENTION", "90d", "seconds >= 3600 or a timedelta of at least an hour"),
    ],
)
def test_e003__bad_value_names_the_key_and_the_rule(key: str, bad: Any, rule: str) -> None:
    message = only({key: bad})

    assert isinstance(message, Error) and message.id == "django_jobs.E003"
    assert f"DJANGO_JOBS[{key!r}]" in message.msg
    assert rule in message.msg, message.msg


@pytest.mark.parametrize(
    "key",
    [
        "DEFAULT_MAX_ATTEMPTS", "BACKOFF_BASE", "BACKOFF_MAX", "POLL_INTERVAL", "DEFAULT_TIMEOUT",
        "HEARTBEAT_INTERVAL", "STOP_GRACE",
    ],
)
def test_e003__nan_is_not_a_number_in_range(key: str) -> None:
    # nan < minimum is False, so a plain "v < minimum" test lets it through, and a NaN backoff
    # or poll interval then breaks the worker at run time.
    assert ids({key: float("nan")}) == ["django_jobs.E003"]


@pytest.mark.parametrize(
    ("retention", "named"),
    [
        ({"dead": 0}, "leaves out 'succeeded' and 'stopped'"),
        ({"succeeded": 3600, "dead": None}, "leaves out 'stopped'"),
    ],
)
def test_w004__a_retention_that_leaves_statuses_out_names_the_ones_kept_forever(
    retention: dict[str, Any], named: str
) -> None:
    message = only({"RETENTION": retention})

    assert isinstance(message, Warning) and message.id == "django_jobs.W004"
    assert named + ": those are kept forever" in message.msg


def test_e003__hint_gives_the_default() -> None:
    assert only({"BACKOFF_FACTOR": 0.5}).hint == "The default is 2.0."


def test_e003__every_bad_key_is_reported() -> None:
    assert ids({"POLL_INTERVAL": 0, "BACKOFF_JITTER": 2, "DEFAULT_QUEUE": ""}) == ["django_jobs.E003"] * 3


# -- E006 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [{"RESCUE_AFTER": 10}, {"HEARTBEAT_INTERVAL": 30}, {"HEARTBEAT_INTERVAL": 1, "RESCUE_AFTER": 2.9}],
)
def test_e006__rescue_after_must_span_several_heartbeats(value: dict[str, Any]) -> None:
    message = only(value)

    assert isinstance(message, Error) and message.id == "django_jobs.E006"
    assert "its running jobs run a second time" in message.msg
    assert "at least 3 * HEARTBEAT_INTERVAL" in message.hint


def test_e006__not_reported_on_top_of_an_out_of_range_value() -> None:
    assert ids({"RESCUE_AFTER": 0}) == ["django_jobs.E003"]


# -- E004, E005, W001: the database ----------------------------------------------------------


def test_e004__database_alias_must_exist() -> None:
    message = only({"DATABASE": "jobs"})

    assert message.id == "django_jobs.E004"
    assert message.msg == "DJANGO_JOBS['DATABASE'] is 'jobs', which is not in DATABASES."
    assert message.hint == "Use one of: default."


def _databases_with(alias: str, engine: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings and a real connection handler with one more alias (no connection is opened)."""
    databases = {**settings.DATABASES, alias: {"ENGINE": engine, "NAME": ":memory:"}}
    monkeypatch.setattr(checks, "connections", ConnectionHandler(databases))
    return override_settings(DATABASES=databases)


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.usefixtures("no_code_limits")
def test_w001__sqlite_is_a_warning_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with _databases_with("lite", "django.db.backends.sqlite3", monkeypatch):
        message = only({"DATABASE": "lite"})

    assert isinstance(message, Warning) and message.id == "django_jobs.W001"
    assert "SKIP LOCKED" in message.msg


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_w302__limits_on_sqlite_say_the_limited_jobs_never_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test app declares limited jobs (tests.testapp.jobs.limited_pair and others).
    with _databases_with("lite", "django.db.backends.sqlite3", monkeypatch):
        messages = run_checks({"DATABASE": "lite"})
    (w302,) = [m for m in messages if m.id == "django_jobs.W302"]
    from django_jobs.registry import registry

    first = sorted(d.name for d in registry if d.keyed)[0]  # other tests may have registered more
    assert f"the limited jobs ({first}" in w302.msg and "never run" in w302.msg


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_e005__other_databases_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with _databases_with("other", "django.db.backends.dummy", monkeypatch):
        message = only({"DATABASE": "other"})

    assert isinstance(message, Error) and message.id == "django_jobs.E005"
    assert message.hint == "Point DJANGO_JOBS['DATABASE'] at a PostgreSQL database."


def test_postgresql_database__passes() -> None:
    assert run_checks({"DATABASE": "default"}) == []


def test_check_settings__is_registered_with_django() -> None:
    from django.core.checks import registry

    assert checks.check_settings in registry.registry.get_checks()


# -- monitoring: METRICS_TOKEN (E003, W002), MAIL_ADMINS_ON_DEAD without ADMINS (W003) ---------


def monitoring(value: Any, **overrides: Any) -> list[Any]:
    with override_settings(DJANGO_JOBS=value, **overrides):
        return checks.check_monitoring()


def test_monitoring__a_long_token_and_mail_with_admins_pass() -> None:
    value = {"METRICS_TOKEN": "x" * 43, "MAIL_ADMINS_ON_DEAD": True, "ADMIN_BASE_URL": "https://ops.example.com"}
    assert monitoring(value, ADMINS=[("Ops", "ops@example.com")]) == []
    assert monitoring({}) == []


@pytest.mark.parametrize("token", ["", "   ", 12345, b"bytes-are-not-a-token-at-all-no"])
def test_e003__metrics_token_must_be_a_non_empty_string(token: Any) -> None:
    (message,) = monitoring({"METRICS_TOKEN": token})

    assert message.id == "django_jobs.E003"
    assert "must be a non-empty string or None" in message.msg
    assert "secrets.token_urlsafe(32)" in message.hint


def test_w002__a_short_metrics_token_is_a_warning() -> None:
    (message,) = monitoring({"METRICS_TOKEN": "hunter2"})

    assert isinstance(message, Warning) and message.id == "django_jobs.W002"
    assert message.msg == "DJANGO_JOBS['METRICS_TOKEN'] has 7 characters: short enough to guess."


def test_w003__mail_on_dead_without_admins_is_a_warning() -> None:
    (message,) = monitoring({"MAIL_ADMINS_ON_DEAD": True, "ADMIN_BASE_URL": "https://ops.example.com"}, ADMINS=[])

    assert isinstance(message, Warning) and message.id == "django_jobs.W003"
    assert "ADMINS is empty" in message.msg


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_e003__mail_on_missed_must_be_true_false_or_none(value: Any) -> None:
    (message,) = monitoring({"MAIL_ADMINS_ON_MISSED": value})

    assert message.id == "django_jobs.E003"
    assert "must be True, False or None" in message.msg


def test_w003__mail_on_missed_without_admins_is_a_warning() -> None:
    (message,) = monitoring({"MAIL_ADMINS_ON_MISSED": True, "ADMIN_BASE_URL": "https://ops.example.com"}, ADMINS=[])

    assert message.id == "django_jobs.W003"
    assert message.msg.startswith("DJANGO_JOBS['MAIL_ADMINS_ON_MISSED'] is on, but ADMINS is empty")


def test_w005__mail_on_dead_without_admin_base_url_is_a_warning() -> None:
    (message,) = monitoring({"MAIL_ADMINS_ON_DEAD": True}, ADMINS=[("Ops", "ops@example.com")])

    assert isinstance(message, Warning) and message.id == "django_jobs.W005"
    assert "ADMIN_BASE_URL isn't set" in message.msg


@pytest.mark.parametrize("url", ["ops.example.com", "https://", "ftp://ops.example.com", 5])
def test_e003__admin_base_url_must_be_an_http_url(url: Any) -> None:
    (message,) = monitoring({"ADMIN_BASE_URL": url})

    assert message.id == "django_jobs.E003"
    assert "must be a URL starting with https:// or http://, or None" in message.msg


# -- QUEUES: the queues' limits (E301-E305, W301) ----------------------------------------------


def queues(value: Any) -> list[Any]:
    with override_settings(DJANGO_JOBS={"QUEUES": value}):
        return checks.check_queues()


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"partner-api": {"concurrency": 4, "rate": "100/m"}},
        {"partner-api": {"concurrency": 1}, "reports": {"rate": "5/s"}},
        {"partner-api": {"rate": (10, timedelta(seconds=30))}, "mail": {"concurrency": None, "rate": "1/d"}},
    ],
)
def test_queues__valid_limits_pass(value: Any) -> None:
    assert queues(value) == []


def test_queues__the_default_passes_and_the_check_is_registered() -> None:
    from django.core.checks import registry

    assert checks.check_queues() == []
    assert checks.check_queues in registry.registry.get_checks()


@pytest.mark.parametrize("value", [["partner-api"], "partner-api", None])
def test_e301__queues_must_be_a_dict(value: Any) -> None:
    (message,) = queues(value)

    assert message.id == "django_jobs.E301"
    assert message.msg.startswith("DJANGO_JOBS['QUEUES'] must be a dict of queue name -> limits, not ")
    assert message.hint == 'For example {"partner-api": {"concurrency": 4, "rate": "100/m"}}.'


def test_e301__each_queues_limits_must_be_a_dict() -> None:
    (message,) = queues({"partner-api": 4})

    assert message.id == "django_jobs.E301"
    assert message.msg == (
        "DJANGO_JOBS['QUEUES']['partner-api'] is 4; it must be a dict with a concurrency, a rate, or both."
    )


@pytest.mark.parametrize(
    ("queue", "problem"),
    [
        ("a,b", "contains a comma"),
        (" emails", "starts or ends with whitespace"),
        ("", "must be a non-empty string"),
        ("q" * 101, "over the limit of 100"),
        (7, "must be a non-empty string, not 7"),
    ],
)
def test_e302__an_invalid_queue_name(queue: Any, problem: str) -> None:
    (message,) = queues({queue: {"concurrency": 1}})

    assert message.id == "django_jobs.E302"
    assert message.msg.startswith("DJANGO_JOBS['QUEUES'] names an invalid queue: ") and problem in message.msg
    assert message.hint


def test_e303__an_unknown_key_gets_a_did_you_mean() -> None:
    close, far = queues({"partner-api": {"concurency": 4, "burst": 2}})

    assert (close.id, far.id) == ("django_jobs.E303", "django_jobs.E303")
    assert close.msg == "DJANGO_JOBS['QUEUES']['partner-api'] has an unknown key 'concurency'."
    assert close.hint == "Did you mean 'concurrency'?"
    assert far.hint == "The keys are 'concurrency' and 'rate'."


@pytest.mark.parametrize(
    ("concurrency", "says"),
    [
        (0, "['concurrency']=0 would never run a job"),
        (-1, "['concurrency']=-1 would never run a job"),
        ("4", "['concurrency'] must be an int (jobs at once), not str '4'"),
        (True, "must be an int (jobs at once), not bool True"),
        (2.5, "must be an int (jobs at once), not float 2.5"),
    ],
)
def test_e304__concurrency_must_be_a_whole_number_of_at_least_one(concurrency: Any, says: str) -> None:
    (message,) = queues({"partner-api": {"concurrency": concurrency}})

    assert message.id == "django_jobs.E304"
    assert message.msg.startswith("DJANGO_JOBS['QUEUES']['partner-api']") and says in message.msg
    assert "a whole number >= 1" in message.hint


@pytest.mark.parametrize(
    ("rate", "says"),
    [
        ("100 per minute", "isn't a rate; write it as"),
        ("0/m", "allows no start at all"),
        ("", "isn't a rate"),
        (100, "isn't a rate"),
        ((5, timedelta(days=8)), "the period can be at most 7 days"),
    ],
)
def test_e305__rate_must_be_a_rate_parse_rate_accepts(rate: Any, says: str) -> None:
    (message,) = queues({"partner-api": {"rate": rate}})

    assert message.id == "django_jobs.E305"
    assert message.msg.startswith("DJANGO_JOBS['QUEUES']['partner-api']['rate']=") and says in message.msg
    assert '"30/m"' in message.hint


def test_w301__an_entry_that_limits_nothing() -> None:
    (message,) = queues({"partner-api": {}})

    assert isinstance(message, Warning) and message.id == "django_jobs.W301"
    assert message.msg == "DJANGO_JOBS['QUEUES']['partner-api'] limits nothing."
