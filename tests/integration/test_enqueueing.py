"""enqueueing.py: validation at enqueue time, the row each option writes, unique keys, batches."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs import enqueue, enqueue_many
from django_jobs import job as register_job
from django_jobs.exceptions import (
    InvalidJobArguments,
    InvalidJobOptions,
    InvalidPayload,
    JobNotRegistered,
    PayloadTooLarge,
)
from django_jobs.models import Job, JobStatus
from django_jobs.signals import job_enqueued
from tests.support.factories import JobFactory
from tests.support.procs import wait_lock_waiter
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db


@register_job(name="tests.enqueueing.anything")
def anything(*args: Any, **kwargs: Any) -> None:
    pass


def nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def inserts(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if "INSERT INTO" in q["sql"]]


# -- validation: nothing is written and the message says what was wrong ------------------------


def test_enqueue__unknown_name_suggests_the_registered_one() -> None:
    with pytest.raises(JobNotRegistered, match=r"'tests\.testapp\.jobs\.recrod'.*Did you mean 'tests\.testapp\.jobs\.record'\?"):
        enqueue("tests.testapp.jobs.recrod", "x")

    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ((1, 2), "argument 'label' is a tuple, which doesn't survive a JSON round trip; pass a list"),
        (dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "argument 'label' is a datetime"),
        (Decimal("9.99"), "argument 'label' is a Decimal"),
        ({3, 1}, "argument 'label' is a set"),
        ({1: "one"}, "argument 'label' has the key 1 (int); JSON object keys are strings"),
        (float("nan"), "argument 'label' is nan, which JSON can't represent"),
        ("a\x00b", "argument 'label' contains a NUL character"),
    ],
)
def test_enqueue__non_json_argument_is_rejected_naming_it(value: Any, expected: str) -> None:
    with pytest.raises(InvalidPayload) as info:
        jobs.record.enqueue(label=value)

    assert str(info.value).startswith("Can't enqueue 'tests.testapp.jobs.record': ")
    assert expected in str(info.value)
    assert not Job.objects.exists()


def test_enqueue__model_instance_is_rejected_with_advice_to_pass_its_pk() -> None:
    effect = SideEffect.objects.create(job_id=1)

    with pytest.raises(InvalidPayload, match=r"positional argument 0 is a SideEffect.*pass its primary key"):
        jobs.record.enqueue(effect)


def test_enqueue__missing_argument_names_it_and_shows_the_signature() -> None:
    with pytest.raises(InvalidJobArguments) as info:
        jobs.add.enqueue(1)

    message = str(info.value)
    assert "Can't enqueue 'tests.add': missing a required argument: 'b'" in message
    assert "Its signature is add(a: 'int', b: 'int') -> 'int'." in message
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1,), {"a": 2, "b": 3}, "multiple values for argument 'a'"),
        ((1, 2), {"c": 3}, "got an unexpected keyword argument 'c'"),
    ],
)
def test_enqueue__arguments_that_do_not_bind_are_rejected(
    args: tuple[Any, ...], kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidJobArguments, match=problem):
        jobs.add.enqueue(*args, **kwargs)


def test_invalid_job_arguments__is_also_a_type_error() -> None:
    with pytest.raises(TypeError):
        jobs.add.enqueue()


def test_enqueue__payload_over_the_limit_says_its_size_and_the_limit() -> None:
    with override_settings(DJANGO_JOBS={"MAX_PAYLOAD_BYTES": 1000}):
        with pytest.raises(PayloadTooLarge) as info:
            jobs.record.enqueue("x" * 2000)

    message = str(info.value)
    assert "its arguments are 2,009 bytes of JSON, over the 1,000-byte limit" in message
    assert 'DJANGO_JOBS["MAX_PAYLOAD_BYTES"]' in message
    assert not Job.objects.exists()


def test_enqueue__payload_at_exactly_the_limit_is_accepted() -> None:
    # [["…"],{}] is 9 bytes around the text.
    with override_settings(DJANGO_JOBS={"MAX_PAYLOAD_BYTES": 1000}):
        jobs.record.enqueue("x" * 991)
        with pytest.raises(PayloadTooLarge):
            jobs.record.enqueue("x" * 992)

    assert Job.objects.count() == 1


def test_enqueue__payload_limit_counts_utf8_bytes_not_escapes() -> None:
    # "é" is 2 bytes of UTF-8 (as stored), not the 6 of "\u00e9"; [["…"],{}] is 9 bytes around it.
    with override_settings(DJANGO_JOBS={"MAX_PAYLOAD_BYTES": 1000}):
        jobs.record.enqueue("é" * 495)
        with pytest.raises(PayloadTooLarge, match="its arguments are 1,001 bytes of JSON"):
            jobs.record.enqueue("é" * 496)

    assert Job.objects.get().args == ["é" * 495]


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        (["report-\udcff.csv"], {}, "positional argument 0 contains a lone surrogate"),
        ([], {"files": {"dir": ["ok", "report-\udcff.csv"]}}, "argument 'files'['dir'][1] contains a lone surrogate"),
        ([], {"meta": {"\udcff": 1}}, "argument 'meta' has the key '\\udcff', which contains a lone surrogate"),
        ([], {"\udcff": 1}, "the argument name '\\udcff' contains a lone surrogate"),
        ([], {"a\x00b": 1}, "the argument name 'a\\x00b' contains a NUL character"),
        ([], {"text": "a\x00b"}, "argument 'text' contains a NUL character"),
    ],
)
def test_enqueue__text_postgresql_cant_store_is_refused_naming_the_argument(
    args: list[Any], kwargs: dict[str, Any], named: str
) -> None:
    # Refused before the INSERT: the database's error would abort the caller's transaction.
    with transaction.atomic():
        with pytest.raises(InvalidPayload) as info:
            anything.enqueue(*args, **kwargs)
        assert named in str(info.value)
        assert str(info.value).startswith("Can't enqueue 'tests.enqueueing.anything': ")
        assert Job.objects.count() == 0  # the transaction is still usable


def test_enqueue_many__a_lone_surrogate_in_one_item_refuses_the_batch() -> None:
    with transaction.atomic():
        with pytest.raises(InvalidPayload, match="argument 'label' contains a lone surrogate"):
            jobs.record.enqueue_many([{"label": "ok"}, {"label": "\udcff"}])
        assert Job.objects.count() == 0


def test_enqueue__arguments_nested_up_to_the_depth_limit_are_accepted() -> None:
    from django_jobs.payload import MAX_DEPTH

    anything.enqueue(nested(MAX_DEPTH))

    assert Job.objects.get().args == [nested(MAX_DEPTH)]


def test_enqueue__arguments_nested_deeper_than_the_limit_are_refused() -> None:
    with pytest.raises(InvalidPayload, match=r"positional argument 0(\[0\])+ nests lists or dicts more than 100 levels deep"):
        anything.enqueue(nested(101))
    with pytest.raises(InvalidPayload, match="nests lists or dicts more than 100 levels deep"):
        anything.enqueue(data=nested(5000))


def test_enqueue__a_self_referencing_argument_is_refused_naming_it() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop

    with pytest.raises(InvalidPayload, match=r"argument 'data'\['self'\]\['self'\].*\(or contains itself\)"):
        anything.enqueue(data=loop)


def test_enqueue__a_unique_key_longer_than_its_column_is_refused_and_nothing_is_written() -> None:
    # It used to be cut to 255 characters, committed, and then reported as a RuntimeError.
    with transaction.atomic():
        with pytest.raises(InvalidJobOptions, match="unique_key is 256 characters long, over the limit of 255"):
            jobs.record.using(unique_key="k" * 256).enqueue("x")
        with pytest.raises(InvalidJobOptions, match="unique_key is 256 characters long"):
            enqueue_many(jobs.record.using(unique_key="k" * 256), [["x"]])
        assert Job.objects.count() == 0

    key = "k" * 255
    assert jobs.record.using(unique_key=key).enqueue("x").unique_key == key
    assert Job.objects.get().unique_key == key


def test_enqueue__a_queue_longer_than_its_column_is_refused() -> None:
    with pytest.raises(InvalidJobOptions, match="queue is 101 characters long, over the limit of 100"):
        jobs.record.using(queue="q" * 101).enqueue("x")

    assert Job.objects.count() == 0


def test_enqueue__a_priority_outside_the_columns_range_is_refused_before_the_insert() -> None:
    with transaction.atomic():
        with pytest.raises(InvalidJobOptions, match="priority must be between -2,147,483,648 and 2,147,483,647"):
            jobs.record.using(priority=2**31).enqueue("x")
        assert Job.objects.count() == 0


def test_enqueue__max_attempts_must_be_a_whole_number() -> None:
    with pytest.raises(InvalidJobOptions, match="max_attempts must be an int, not float 1.5"):
        jobs.record.using(max_attempts=1.5).enqueue("x")  # type: ignore[arg-type]

    assert Job.objects.count() == 0


@pytest.mark.parametrize("run_at", [dt.date(2030, 1, 1), "2030-01-01T00:00:00+00:00", 1893456000])
def test_enqueue__run_at_that_isnt_a_datetime_is_refused(run_at: Any) -> None:
    with pytest.raises(InvalidJobOptions, match=f"run_at must be an aware datetime, not {type(run_at).__name__}"):
        jobs.record.using(run_at=run_at).enqueue("x")


# -- what gets written -----------------------------------------------------------------------


def test_enqueue__writes_a_queued_row_with_the_jobs_defaults() -> None:
    before = timezone.now()
    job = jobs.sleep_forever.enqueue()
    after = timezone.now()

    row = Job.objects.get(pk=job.pk)
    assert row.name == "tests.testapp.jobs.sleep_forever"
    assert row.status == JobStatus.QUEUED
    assert (row.args, row.kwargs) == ([], {})
    assert row.queue == "default"
    assert row.priority == 0
    assert row.max_attempts == 2
    assert row.timeout == 0.5
    assert row.attempts == 0
    assert row.unique_key is None
    assert before <= row.run_at <= after
    assert row.created_at == row.run_at


def test_enqueue__stores_positional_and_keyword_arguments() -> None:
    job = jobs.add.enqueue(2, b=3)

    row = Job.objects.get(pk=job.pk)
    assert (row.args, row.kwargs) == ([2], {"b": 3})


def test_enqueue__accepts_a_name_a_definition_or_the_function() -> None:
    by_name = enqueue("tests.add", 1, 2)
    by_definition = enqueue(jobs.add, 1, 2)
    by_function = enqueue(jobs.add.func, 1, 2)

    assert {j.name for j in (by_name, by_definition, by_function)} == {"tests.add"}
    assert Job.objects.count() == 3


def test_enqueue__settings_give_the_default_queue_and_attempts() -> None:
    with override_settings(DJANGO_JOBS={"DEFAULT_QUEUE": "bulk", "DEFAULT_MAX_ATTEMPTS": 9, "DEFAULT_TIMEOUT": 60}):
        job = jobs.record.enqueue()

    row = Job.objects.get(pk=job.pk)
    assert (row.queue, row.max_attempts, row.timeout) == ("bulk", 9, 60.0)


def test_enqueue__settings_read_before_an_override_give_way_to_it() -> None:
    jobs.record.enqueue()  # reads (and caches) DEFAULT_QUEUE
    with override_settings(DJANGO_JOBS={"DEFAULT_QUEUE": "bulk"}):
        inside = jobs.record.enqueue()
    after = jobs.record.enqueue()

    assert (inside.queue, after.queue) == ("bulk", "default")


def test_enqueue__fills_every_column_the_call_decides() -> None:
    # _new_job() fills these from _fixed_columns(); anything else gets the model default.
    from django_jobs.enqueueing import _FIXED_NAMES, _fixed_columns

    assert sorted(_fixed_columns(jobs.record)) == sorted(_FIXED_NAMES)


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_enqueue__its_insert_is_a_prepared_statement_and_django_s_queries_are_not() -> None:
    # Django opens connections with psycopg's prepare_threshold=None, under which psycopg
    # ignores prepare=True as well; django_jobs must get its own statements prepared anyway.
    for _ in range(3):
        jobs.record.enqueue()
    Job.objects.filter(queue="default").count()

    statements = _prepared_statements()
    assert sum("INSERT INTO django_jobs_job" in s for s in statements) == 1
    assert not any("COUNT(*)" in s.upper() for s in statements)


def test_enqueue__columns_every_row_leaves_null_are_not_sent_and_a_set_one_is() -> None:
    # The insert writes NULL for the columns a job leaves empty (most of them) in its text; a job
    # that sets one of them (a unique_key, a timeout) gets a statement of its own shape.
    plain = jobs.record.enqueue("a")
    keyed = jobs.record.using(unique_key="k-1").enqueue("b")
    again = jobs.record.enqueue("c")

    inserts = [s for s in _prepared_statements() if "INSERT INTO django_jobs_job" in s]
    assert len(inserts) == 2, inserts
    assert all("NULL" in s for s in inserts)
    stored = {job.pk: Job.objects.get(pk=job.pk) for job in (plain, keyed, again)}
    assert [stored[j.pk].unique_key for j in (plain, keyed, again)] == [None, "k-1", None]
    assert [stored[j.pk].args for j in (plain, keyed, again)] == [["a"], ["b"], ["c"]]


def test_enqueue__returns_an_instance_equal_to_its_row_with_fresh_mutable_fields() -> None:
    first = jobs.record.using(unique_key="eq-1", priority=3, delay=dt.timedelta(seconds=5)).enqueue("x")
    second = jobs.record.enqueue("y")

    for job in (first, second):
        stored = Job.objects.get(pk=job.pk)
        assert [(f.attname, getattr(job, f.attname)) for f in Job._meta.concrete_fields] == [
            (f.attname, getattr(stored, f.attname)) for f in Job._meta.concrete_fields
        ]
        assert job._state.adding is False and job._state.db == "default"
    first.history.append({"attempt": 1})
    assert second.history == []
    first.refresh_from_db()  # a model instance like any other
    assert first.history == []


def test_enqueue__the_instance_goes_through_init_while_pre_init_has_a_receiver() -> None:
    from django.db.models.signals import pre_init

    seen: list[Any] = []
    receiver = lambda sender, args, kwargs, **extra: seen.append(len(args))  # noqa: E731
    pre_init.connect(receiver, sender=Job)
    try:
        job = jobs.record.enqueue("z")
    finally:
        pre_init.disconnect(receiver, sender=Job)

    assert seen == [len(Job._meta.concrete_fields)]
    assert Job.objects.get(pk=job.pk).args == job.args == ["z"]


def test_enqueue__prepare_statements_off_prepares_nothing() -> None:
    with override_settings(DJANGO_JOBS={"PREPARE_STATEMENTS": False}):
        jobs.record.enqueue()

    assert not any("INSERT INTO django_jobs_job" in s for s in _prepared_statements())


def test_using__delay_sets_run_at_that_far_ahead() -> None:
    before = timezone.now()
    job = jobs.record.using(delay=dt.timedelta(minutes=10)).enqueue()
    after = timezone.now()

    run_at = Job.objects.get(pk=job.pk).run_at
    assert before + dt.timedelta(minutes=10) <= run_at <= after + dt.timedelta(minutes=10)


def test_using__run_at_is_stored_as_given() -> None:
    when = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)

    job = jobs.record.using(run_at=when).enqueue()

    assert Job.objects.get(pk=job.pk).run_at == when


def test_using__priority_queue_and_max_attempts_are_stored() -> None:
    job = jobs.record.using(priority=-4, queue="emails", max_attempts=8).enqueue()

    row = Job.objects.get(pk=job.pk)
    assert (row.priority, row.queue, row.max_attempts) == (-4, "emails", 8)


def test_using__unique_key_is_stored() -> None:
    job = jobs.record.using(unique_key="order-1").enqueue()

    assert Job.objects.get(pk=job.pk).unique_key == "order-1"


def test_enqueue__sends_job_enqueued_with_the_saved_row() -> None:
    seen: list[Job] = []

    def receiver(sender: Any, job: Job, **kwargs: Any) -> None:
        seen.append(job)

    job_enqueued.connect(receiver)
    try:
        job = jobs.record.enqueue("a")
    finally:
        job_enqueued.disconnect(receiver)

    assert [j.pk for j in seen] == [job.pk]
    assert job.pk is not None


# -- unique keys -----------------------------------------------------------------------------


def test_unique_key__a_second_enqueue_returns_the_existing_job() -> None:
    first = jobs.record.using(unique_key="sync-42").enqueue("first")
    second = jobs.record.using(unique_key="sync-42").enqueue("second")

    assert second.pk == first.pk
    assert second.args == ["first"]
    assert Job.objects.filter(unique_key="sync-42").count() == 1


def test_unique_key__the_existing_job_is_returned_whatever_its_active_status() -> None:
    running = JobFactory(unique_key="k", status=JobStatus.RUNNING, attempts=1)
    retrying = JobFactory(unique_key="r", status=JobStatus.RETRYING, attempts=1)

    assert jobs.record.using(unique_key="k").enqueue().pk == running.pk
    assert jobs.record.using(unique_key="r").enqueue().pk == retrying.pk
    assert Job.objects.count() == 2


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.STOPPED, JobStatus.DEAD])
def test_unique_key__a_finished_job_does_not_block_a_new_one(status: JobStatus) -> None:
    old = JobFactory(unique_key="nightly", status=status, finished_at=timezone.now())

    new = jobs.record.using(unique_key="nightly").enqueue()

    assert new.pk != old.pk
    assert Job.objects.filter(unique_key="nightly").count() == 2


def test_unique_key__a_duplicate_does_not_send_job_enqueued() -> None:
    jobs.record.using(unique_key="once").enqueue()
    seen: list[Job] = []

    def receiver(sender: Any, job: Job, **kwargs: Any) -> None:
        seen.append(job)

    job_enqueued.connect(receiver)
    try:
        jobs.record.using(unique_key="once").enqueue()
    finally:
        job_enqueued.disconnect(receiver)

    assert seen == []


def test_unique_key__a_duplicate_inside_atomic_leaves_the_transaction_usable() -> None:
    # ON CONFLICT DO NOTHING, not a caught IntegrityError: nothing aborts the caller's transaction.
    with transaction.atomic():
        first = jobs.record.using(unique_key="tx").enqueue()
        again = jobs.record.using(unique_key="tx").enqueue()
        after = jobs.record.enqueue("after")

    assert again.pk == first.pk
    assert Job.objects.filter(pk=after.pk).exists()


def _in_thread(target: Callable[[], Any], results: dict[str, Any], key: str) -> threading.Thread:
    def run() -> None:
        try:
            results[key] = target()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test thread
            results[key] = exc
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_unique_key__enforced_by_the_database_between_concurrent_enqueues(second_connection: Any) -> None:
    """Two connections enqueue the same key at once: the second waits for the first, then dedupes."""
    first_inserted = threading.Event()
    release_first = threading.Event()
    results: dict[str, Any] = {}

    def first() -> Job:
        with transaction.atomic():
            job = jobs.record.using(unique_key="race").enqueue("first")
            first_inserted.set()
            assert release_first.wait(20)
        return job

    def second() -> Job:
        assert first_inserted.wait(20)
        return jobs.record.using(unique_key="race").enqueue("second")

    threads = [_in_thread(first, results, "first"), _in_thread(second, results, "second")]
    try:
        # Neither app-level check could see the other's row: only the unique index can make the
        # second INSERT wait on the first, uncommitted one.
        wait_lock_waiter(second_connection, "%INSERT INTO%", "the second enqueue to wait on the first one's uncommitted row")
    finally:
        release_first.set()
        for thread in threads:
            thread.join(20)

    for key in ("first", "second"):
        if isinstance(results.get(key), BaseException):
            raise results[key]
    assert results["second"].pk == results["first"].pk
    assert list(Job.objects.filter(unique_key="race").values_list("args", flat=True)) == [["first"]]


# -- enqueue_many ----------------------------------------------------------------------------


def test_enqueue_many__inserts_every_row_in_one_statement() -> None:
    with CaptureQueriesContext(connection) as ctx:
        created = jobs.add.enqueue_many([[i, i] for i in range(50)])

    assert len(inserts(ctx)) == 1
    assert len(created) == 50
    assert all(job.pk is not None for job in created)
    rows = dict(Job.objects.values_list("pk", "args"))
    assert [rows[job.pk] for job in created] == [[i, i] for i in range(50)]


def test_enqueue_many__returns_instances_equal_to_their_rows_each_with_its_own_mutable_fields() -> None:
    created = jobs.add.enqueue_many([[i, 1] for i in range(3)])

    for job in created:
        stored = Job.objects.get(pk=job.pk)
        assert [(f.attname, getattr(job, f.attname)) for f in Job._meta.concrete_fields] == [
            (f.attname, getattr(stored, f.attname)) for f in Job._meta.concrete_fields
        ]
        assert job._state.adding is False and job._state.db == "default"
    created[0].history.append({"attempt": 1})
    assert created[1].history == [] and created[1].args == [1, 1]


def test_enqueue_many__every_instance_goes_through_init_while_post_init_has_a_receiver() -> None:
    from django.db.models.signals import post_init

    seen: list[Any] = []
    receiver = lambda sender, instance, **kwargs: seen.append(instance)  # noqa: E731
    post_init.connect(receiver, sender=Job)
    try:
        created = jobs.add.enqueue_many([[i, 1] for i in range(3)])
    finally:
        post_init.disconnect(receiver, sender=Job)

    assert [id(job) for job in created] == [id(job) for job in seen]


@pytest.mark.parametrize("enabled", [True, False], ids=["gc-on", "gc-off"])
def test_enqueue_many__leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    import gc

    seen: list[bool] = []
    receiver = lambda sender, **kwargs: seen.append(gc.isenabled())  # noqa: E731
    job_enqueued.connect(receiver)
    (gc.enable if enabled else gc.disable)()
    try:
        jobs.add.enqueue_many([[1, 2], [3, 4]])
        after = gc.isenabled()
        with pytest.raises(InvalidJobArguments):
            jobs.add.enqueue_many([[1, 2], [3]])
        after_error = gc.isenabled()
    finally:
        gc.enable()
        job_enqueued.disconnect(receiver)

    assert seen == [False, False]  # paused while the batch was built
    assert (after, after_error) == (enabled, enabled)


def test_enqueue_many__accepts_kwargs_dicts_and_args_lists_and_keeps_their_order() -> None:
    created = enqueue_many("tests.add", [{"a": 1, "b": 2}, (3, 4), [5, 6]])

    rows = {j.pk: (j.args, j.kwargs) for j in Job.objects.all()}
    assert [rows[j.pk] for j in created] == [([], {"a": 1, "b": 2}), ([3, 4], {}), ([5, 6], {})]


def test_enqueue_many__an_empty_batch_writes_nothing() -> None:
    with CaptureQueriesContext(connection) as ctx:
        assert jobs.record.enqueue_many([]) == []

    assert ctx.captured_queries == []


def test_enqueue_many__one_bad_item_rejects_the_whole_batch() -> None:
    with pytest.raises(InvalidPayload, match="argument 'label' is a set"):
        jobs.record.enqueue_many([{"label": "ok"}, {"label": {1}}])

    assert not Job.objects.exists()


def test_enqueue_many__an_item_of_another_type_is_rejected() -> None:
    with pytest.raises(InvalidJobArguments, match="takes dicts of keyword arguments or lists of positional ones, not str"):
        jobs.record.enqueue_many(["label"])


def test_enqueue_many__uses_the_options_of_using() -> None:
    created = jobs.record.using(queue="batch", priority=7).enqueue_many([["a"], ["b"]])

    assert {(j.queue, j.priority) for j in Job.objects.filter(pk__in=[c.pk for c in created])} == {("batch", 7)}


def test_enqueue_many__with_a_unique_key_inserts_one_row_and_returns_it_for_every_item() -> None:
    # using() gives the whole batch one key: the first item wins, the rest dedupe onto it.
    created = jobs.record.using(unique_key="b").enqueue_many([["b1"], ["b2"], ["b3"]])

    assert created[0].pk is not None
    assert [j.pk for j in created] == [created[0].pk] * 3
    assert list(Job.objects.values_list("args", flat=True)) == [["b1"]]


def test_enqueue_many__a_key_held_by_an_active_job_returns_that_job() -> None:
    existing = jobs.record.using(unique_key="a").enqueue("existing")

    with CaptureQueriesContext(connection) as ctx:
        created = jobs.record.using(unique_key="a").enqueue_many([["new 1"], ["new 2"]])

    assert len(inserts(ctx)) == 1
    assert [j.pk for j in created] == [existing.pk, existing.pk]
    assert Job.objects.count() == 1


def test_enqueue_many__sends_job_enqueued_only_for_inserted_rows() -> None:
    jobs.record.using(unique_key="dup").enqueue()
    seen: list[int] = []

    def receiver(sender: Any, job: Job, **kwargs: Any) -> None:
        seen.append(job.pk)

    job_enqueued.connect(receiver)
    try:
        fresh = jobs.record.enqueue_many([["x"], ["y"]])
        jobs.record.using(unique_key="dup").enqueue_many([["z"]])
    finally:
        job_enqueued.disconnect(receiver)

    assert seen == [j.pk for j in fresh]


def test_enqueue__stores_the_trace_context_of_the_current_span_and_nothing_without_one() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    with TracerProvider().get_tracer("tests").start_as_current_span("request") as span:
        one = jobs.record.enqueue("traced")
        batch = enqueue_many(jobs.record, [["a"], ["b"]])
    untraced = jobs.record.enqueue("untraced")

    context = span.get_span_context()
    prefix = f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    rows = Job.objects.in_bulk([one.pk, *(j.pk for j in batch), untraced.pk])
    for job in (one, *batch):
        assert (job.traceparent or "").startswith(prefix)  # the returned instance…
        assert rows[job.pk].traceparent == job.traceparent  # …is the row written
    assert (rows[untraced.pk].traceparent, rows[untraced.pk].tracestate, untraced.traceparent) == (None, None, None)
