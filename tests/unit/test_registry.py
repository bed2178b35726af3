"""registry.py: ``@job`` options, name lookup with suggestions, and ``using()`` copies."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from django_jobs import Backoff, job
from django_jobs.exceptions import InvalidJobOptions, JobNotRegistered
from django_jobs.registry import EnqueueOptions, JobDefinition, Registry, registry, resolve
from tests.testapp import jobs


def _plain(x: int) -> int:
    return x * 2


def test_job__registers_under_module_and_function_name() -> None:
    assert jobs.record.name == "tests.testapp.jobs.record"
    assert registry.get("tests.testapp.jobs.record") is jobs.record
    assert "tests.testapp.jobs.record" in registry


def test_job__name_option_overrides_the_default_name() -> None:
    assert jobs.add.name == "tests.add"
    assert registry.lookup("tests.add") is jobs.add


def test_job__stores_its_options() -> None:
    definition = jobs.fail_always

    assert definition.max_attempts == 3
    assert definition.backoff == Backoff(base=0.05, factor=1, max_delay=0.05, jitter=0)
    assert jobs.fail_fatally.dont_retry == (KeyError,)
    assert jobs.sleep_forever.timeout == 0.5


def test_job__calling_the_definition_calls_the_function_directly() -> None:
    @job(name="tests.registry.double")
    def double(x: int) -> int:
        return x * 2

    assert double(21) == 42


def test_job__timedelta_timeout_is_stored_in_seconds() -> None:
    @job(name="tests.registry.timedelta_timeout", timeout=timedelta(minutes=2))
    def slow() -> None:
        pass

    assert slow.timeout == 120.0


@pytest.mark.parametrize("timeout", [0, -1, timedelta(0)])
def test_job__rejects_a_non_positive_timeout(timeout: object) -> None:
    with pytest.raises(InvalidJobOptions, match="timeout must be positive seconds"):
        job(name="tests.registry.bad_timeout", timeout=timeout)(_plain)  # type: ignore[arg-type]


def test_job__rejects_max_attempts_below_one() -> None:
    with pytest.raises(InvalidJobOptions, match="max_attempts must be at least 1, not 0"):
        job(name="tests.registry.bad_attempts", max_attempts=0)(_plain)


def test_job__rejects_dont_retry_entries_that_are_not_exception_classes() -> None:
    with pytest.raises(InvalidJobOptions, match="dont_retry takes exception classes, not 'KeyError'"):
        job(name="tests.registry.bad_dont_retry", dont_retry=["KeyError"])(_plain)  # type: ignore[list-item]


def test_job__accepts_async_functions() -> None:
    async def coroutine(n: int) -> int:
        return n

    definition = job(name="tests.registry.async")(coroutine)

    assert definition.is_async and not jobs.add.is_async
    assert registry.lookup("tests.registry.async") is definition
    assert asyncio.run(definition(3)) == 3


def test_job__keeps_the_functions_identity() -> None:
    def send_receipt(order_id: int, *, resend: bool = False) -> str:
        """Mail the receipt of an order."""
        return f"{order_id} {resend}"

    definition = job(name="tests.registry.identity")(send_receipt)

    for copy in (definition, definition.using(queue="slow")):
        assert copy.__name__ == "send_receipt"
        assert copy.__qualname__ == send_receipt.__qualname__
        assert copy.__doc__ == "Mail the receipt of an order."
        assert copy.__module__ == __name__
        assert copy.__wrapped__ is send_receipt
        assert inspect.signature(copy) == inspect.signature(send_receipt)
    # Fields win over the function's attributes: update_wrapper's __dict__ copy is left out.
    send_receipt.name = "not the job's name"  # type: ignore[attr-defined]
    assert job(name="tests.registry.identity2")(send_receipt).name == "tests.registry.identity2"


def test_job__rejects_things_that_are_not_callable() -> None:
    with pytest.raises(InvalidJobOptions, match="@job decorates a function"):
        job(name="tests.registry.not_callable")(42)  # type: ignore[arg-type]


def test_job__rejected_definitions_are_not_registered() -> None:
    with pytest.raises(InvalidJobOptions):
        job(name="tests.registry.never", max_attempts=0)(_plain)

    assert "tests.registry.never" not in registry


def test_register__two_functions_under_one_name_is_an_error_naming_both() -> None:
    reg = Registry()
    reg.register(JobDefinition(func=_plain, name="shared"))

    def other(x: int) -> int:
        return x

    with pytest.raises(InvalidJobOptions) as info:
        reg.register(JobDefinition(func=other, name="shared"))
    message = str(info.value)
    assert "Two jobs are registered as 'shared'" in message
    assert "tests.unit.test_registry._plain" in message
    assert "other" in message
    assert "@job(name=...)" in message


def test_register__the_same_function_again_replaces_it_quietly() -> None:
    # A module imported twice (autoreload, an app imported under two paths) re-runs @job.
    reg = Registry()
    reg.register(JobDefinition(func=_plain, name="same"))
    again = JobDefinition(func=_plain, name="same", priority=5)

    reg.register(again)

    assert reg.get("same") is again
    assert reg.names() == ["same"]


def test_lookup__unknown_name_suggests_the_closest_registered_one() -> None:
    with pytest.raises(JobNotRegistered) as info:
        registry.lookup("tests.testapp.jobs.recrod")
    message = str(info.value)
    assert "No job is registered as 'tests.testapp.jobs.recrod'" in message
    assert "Did you mean 'tests.testapp.jobs.record'?" in message
    assert "jobs.py module of an app in INSTALLED_APPS" in message


def test_lookup__unknown_name_with_nothing_close_still_says_where_jobs_go() -> None:
    with pytest.raises(JobNotRegistered) as info:
        registry.lookup("zzzzzzzz")
    assert "Did you mean" not in str(info.value)
    assert "@job" in str(info.value)


def test_job_not_registered__is_also_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        registry.lookup("nope")


def test_resolve__accepts_a_name_a_definition_or_the_decorated_function() -> None:
    assert resolve("tests.add") is jobs.add
    assert resolve(jobs.add) is jobs.add
    assert resolve(jobs.add.func) is jobs.add


def test_resolve__an_undecorated_function_is_rejected_with_advice() -> None:
    with pytest.raises(JobNotRegistered, match="'_plain' is not a registered job; decorate it with @job"):
        resolve(_plain)


def test_resolve__something_else_is_rejected() -> None:
    with pytest.raises(JobNotRegistered, match="pass a job name or a @job function"):
        resolve(42)  # type: ignore[arg-type]


def test_using__returns_a_copy_and_leaves_the_definition_alone() -> None:
    copy = jobs.record.using(queue="emails", priority=3)

    assert copy is not jobs.record
    assert copy.options == EnqueueOptions(queue="emails", priority=3)
    assert jobs.record.options == EnqueueOptions()
    assert copy.func is jobs.record.func and copy.name == jobs.record.name


def test_using__chains_and_later_options_win() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)

    chained = jobs.record.using(queue="a", run_at=when).using(queue="b", delay=timedelta(seconds=5))

    # delay= replaces an earlier run_at= instead of clashing with it.
    assert chained.options == EnqueueOptions(queue="b", delay=timedelta(seconds=5))
    assert chained.using(run_at=when).options == EnqueueOptions(queue="b", run_at=when)


def test_using__unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidJobOptions) as info:
        jobs.record.using(prio=1)
    assert "unknown option(s) ['prio']" in str(info.value)
    assert "priority" in str(info.value) and "unique_key" in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"run_at": datetime(2030, 1, 1, tzinfo=UTC), "delay": timedelta(1)},
            "either run_at= or delay=, not both",
        ),
        ({"run_at": datetime(2030, 1, 1)}, "naive datetime; pass an aware one"),
        ({"delay": 5}, "delay must be a timedelta, not int"),
        ({"max_attempts": 0}, "max_attempts must be at least 1, not 0"),
        ({"unique_key": ""}, "unique_key must be a non-empty string"),
        ({"unique_key": 7}, "unique_key must be a non-empty string"),
        ({"priority": "high"}, "priority must be an int, not str"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"queue": 5}, "queue must be a non-empty string"),
    ],
)
def test_using__rejects_bad_values_saying_what_is_wrong(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidJobOptions, match=message):
        jobs.record.using(**options)


def test_effective_options__fall_back_to_django_jobs_settings() -> None:
    definition = JobDefinition(func=_plain, name="x")
    settings = {"DEFAULT_MAX_ATTEMPTS": 7, "DEFAULT_TIMEOUT": 30, "BACKOFF_BASE": 1, "BACKOFF_JITTER": 0}

    with override_settings(DJANGO_JOBS=settings):
        assert definition.effective_max_attempts == 7
        assert definition.effective_timeout == 30
        assert definition.effective_backoff.delay(3) == 4.0


def test_effective_options__the_jobs_own_options_win() -> None:
    with override_settings(DJANGO_JOBS={"DEFAULT_MAX_ATTEMPTS": 7, "DEFAULT_TIMEOUT": 30}):
        assert jobs.sleep_forever.effective_max_attempts == 2
        assert jobs.sleep_forever.effective_timeout == 0.5
        assert jobs.fail_always.effective_backoff.delay(9) == 0.05


def test_job__rejects_an_empty_queue() -> None:
    with pytest.raises(InvalidJobOptions, match="queue must be a non-empty string, not ''"):
        job(name="tests.registry.empty_queue", queue="")(_plain)


# -- limits: a value the job table would cut short or refuse is an error at decoration time ----


def test_column_limits__match_the_job_table() -> None:
    from django_jobs import registry as registry_module
    from django_jobs.models import Job

    assert registry_module.NAME_MAX_LENGTH == Job._meta.get_field("name").max_length
    assert registry_module.QUEUE_MAX_LENGTH == Job._meta.get_field("queue").max_length
    assert registry_module.UNIQUE_KEY_MAX_LENGTH == Job._meta.get_field("unique_key").max_length


def test_job__a_name_longer_than_its_column_is_refused_with_both_lengths() -> None:
    job(name="tests.registry." + "n" * 240)(_plain)  # 255: fits

    with pytest.raises(InvalidJobOptions, match="the job name is 256 characters long, over the limit of 255"):
        job(name="tests.registry." + "n" * 241)(_plain)


def test_job__a_long_default_name_says_to_give_a_shorter_one() -> None:
    def f() -> None: ...

    f.__module__ = "tests." + "m" * 260
    with pytest.raises(InvalidJobOptions, match=r"over the limit of 255.*@job\(name=\.\.\.\)"):
        job(f)


def test_job__a_queue_longer_than_its_column_is_refused_with_both_lengths() -> None:
    job(name="tests.registry.long_queue_ok", queue="q" * 100)(_plain)

    with pytest.raises(InvalidJobOptions, match="queue is 101 characters long, over the limit of 100"):
        job(name="tests.registry.long_queue", queue="q" * 101)(_plain)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 2**31}, "priority must be between -2,147,483,648 and 2,147,483,647, not 2,147,483,648"),
        ({"priority": -(2**31) - 1}, "priority must be between"),
        ({"priority": 1.5}, "priority must be an int, not float"),
        ({"priority": True}, "priority must be an int, not bool"),
        ({"max_attempts": 1.5}, "max_attempts must be an int, not float 1.5"),
        ({"max_attempts": True}, "max_attempts must be an int, not bool"),
        ({"max_attempts": 10**7}, "max_attempts must be at most 1,000,000"),
        ({"timeout": float("nan")}, "timeout must be positive seconds"),
        ({"timeout": float("inf")}, "timeout must be positive seconds"),
        ({"timeout": -0.5}, "timeout must be positive seconds"),
        ({"timeout": "30"}, "timeout must be seconds .* or a timedelta, not str"),
        ({"timeout": True}, "timeout must be seconds .* or a timedelta, not bool"),
        ({"name": ""}, "the job name must be a non-empty string"),
        ({"name": "tests.registry.nul\x00"}, "NUL character"),
        ({"queue": "a,b"}, "contains a comma"),
        ({"queue": " padded"}, "starts or ends with whitespace"),
        ({"queue": "nul\x00"}, "NUL character"),
        ({"queue": "bad\udcff"}, "lone surrogate"),
    ],
)
def test_job__rejects_bad_options_saying_what_is_wrong(options: dict[str, object], message: str) -> None:
    options.setdefault("name", "tests.registry.bad_options")
    with pytest.raises(InvalidJobOptions, match=message):
        job(**options)(_plain)  # type: ignore[arg-type]


def test_job__a_queue_name_may_contain_spaces() -> None:
    definition = job(name="tests.registry.spaced_queue", queue="my queue")(_plain)

    assert definition.queue == "my queue"
    assert definition.using(queue="other queue").options.queue == "other queue"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"unique_key": "k" * 256}, "unique_key is 256 characters long, over the limit of 255"),
        ({"unique_key": "k\x00"}, "NUL character"),
        ({"queue": "q" * 101}, "queue is 101 characters long, over the limit of 100"),
        ({"queue": "a,b"}, "contains a comma"),
        ({"priority": 2**31}, "priority must be between"),
        ({"priority": False}, "priority must be an int, not bool"),
        ({"max_attempts": 1.5}, "max_attempts must be an int, not float"),
        ({"run_at": datetime(2030, 1, 1).date()}, "run_at must be an aware datetime, not date"),
        ({"run_at": "2030-01-01T00:00:00Z"}, "run_at must be an aware datetime, not str"),
    ],
)
def test_using__rejects_values_the_job_table_would_change(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidJobOptions, match=message):
        jobs.record.using(**options)


def test_using__values_at_the_limits_are_accepted() -> None:
    jobs.record.using(unique_key="k" * 255, queue="q" * 100, priority=2**31 - 1, max_attempts=10**6)
    jobs.record.using(priority=-(2**31))


# -- duplicates: on_duplicate, debounce, unique_while ------------------------------------------


def test_using__duplicate_options_are_stored_and_say_whether_they_replace() -> None:
    thirty = timedelta(seconds=30)

    assert not jobs.record.using(unique_key="k").options.replaces
    assert not jobs.record.using(unique_key="k", on_duplicate="return", unique_while="waiting").options.replaces
    assert jobs.record.using(unique_key="k", on_duplicate="replace").options.replaces
    debounced = jobs.record.using(unique_key="k", debounce=thirty, unique_while="waiting")
    assert debounced.options == EnqueueOptions(unique_key="k", debounce=thirty, unique_while="waiting")
    assert debounced.options.replaces
    assert jobs.record.using(unique_key="k", debounce=thirty, on_duplicate="replace").options.replaces


def test_using__duplicate_options_chain_onto_an_earlier_unique_key() -> None:
    keyed = jobs.record.using(unique_key="k", queue="hooks")

    assert keyed.using(on_duplicate="replace").options == EnqueueOptions(
        unique_key="k", queue="hooks", on_duplicate="replace"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"unique_key": "k", "on_duplicate": "update"},
            "on_duplicate must be one of 'return': keep that job and return it \\(the default\\); "
            "'replace': give a waiting one this enqueue's arguments and run_at. Not 'update'.",
        ),
        ({"unique_key": "k", "on_duplicate": None, "unique_while": "running"},
         "unique_while must be one of 'active': .*; 'waiting': .*. Not 'running'."),
        ({"unique_key": "k", "unique_while": 1}, "unique_while must be one of .* Not 1."),
        ({"unique_key": "k", "debounce": 30}, r"debounce must be a timedelta, not int 30 \(debounce=timedelta\(seconds=30\)\)"),
        ({"unique_key": "k", "debounce": timedelta(0)}, "debounce must be a positive timedelta, not .*Leave it out"),
        ({"unique_key": "k", "debounce": timedelta(seconds=-1)}, "debounce must be a positive timedelta"),
        (
            {"unique_key": "k", "debounce": timedelta(seconds=5), "delay": timedelta(seconds=1)},
            "either debounce= or delay=, not both: debounce sets run_at itself",
        ),
        (
            {"unique_key": "k", "debounce": timedelta(seconds=5), "run_at": datetime(2030, 1, 1, tzinfo=UTC)},
            "either debounce= or run_at=, not both",
        ),
        (
            {"unique_key": "k", "debounce": timedelta(seconds=5), "on_duplicate": "return"},
            'debounce replaces the waiting job\'s arguments and run_at, which on_duplicate="return" refuses',
        ),
        ({"debounce": timedelta(seconds=5)}, r"debounce= needs a unique_key, .* pass it in the same using\(\) call"),
        ({"on_duplicate": "replace"}, "on_duplicate= needs a unique_key"),
        ({"unique_while": "waiting"}, "unique_while= needs a unique_key"),
        (
            {"on_duplicate": "replace", "unique_while": "waiting"},
            r"on_duplicate= and unique_while= need a unique_key.*using\(unique_key=f\"webhook-\{account_id\}\", on_duplicate=...\)",
        ),
    ],
)
def test_using__rejects_bad_duplicate_options_saying_how_to_fix_them(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidJobOptions, match=message):
        jobs.record.using(**options)


def test_using__a_debounce_after_an_earlier_delay_is_refused_too() -> None:
    delayed = jobs.record.using(delay=timedelta(seconds=5))

    with pytest.raises(InvalidJobOptions, match="either debounce= or delay="):
        delayed.using(unique_key="k", debounce=timedelta(seconds=30))


def test_unique_while__choices_match_the_model() -> None:
    from django_jobs.models import UniqueWhile
    from django_jobs.registry import ON_DUPLICATE, UNIQUE_WHILE

    assert list(UNIQUE_WHILE) == list(UniqueWhile.values)
    assert list(ON_DUPLICATE) == ["return", "replace"]
