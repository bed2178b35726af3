"""What type checkers see of the public API: mypy --strict checks this module (tests/run.py, stage
``types``); nothing runs it.

Each ``assert_type`` must hold, and each ``# type: ignore[...]`` marks a call that must stay an
error: mypy's warn_unused_ignores (part of --strict) fails the stage when one stops being needed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, assert_type

from django_jobs import Retry, StopJob, current_job, enqueue, enqueue_many, job
from django_jobs.context import JobContext
from django_jobs.models import Job
from django_jobs.registry import JobDefinition


@job
def send_receipt(order_id: int, *, resend: bool = False) -> str:
    """Mail the receipt of an order."""
    return f"sent {order_id} {resend}"


@job(queue="rates", max_attempts=5, timeout=30)
async def fetch_rate(currency: str) -> float:
    context = current_job()
    if context is None:
        raise StopJob("not in a worker")
    if await context.astop_requested():
        raise StopJob("asked to")
    await context.aset_progress(50, "halfway")
    if currency == "XXX":
        raise Retry(in_=30)
    return 1.0


@job
def total(a: int, b: int, /) -> int:
    return a + b


@job(name="typecheck.untyped")
def untyped(value):  # type: ignore[no-untyped-def]
    return value


def the_definition_keeps_the_function() -> None:
    assert_type(total, JobDefinition[[int, int], int])
    assert_type(send_receipt.__name__, str)
    assert_type(send_receipt.__qualname__, str)
    assert_type(send_receipt.__doc__, str | None)
    assert_type(total.__wrapped__, Callable[[int, int], int])
    assert_type(inspect.signature(send_receipt), inspect.Signature)
    assert_type(send_receipt(1), str)
    coroutine: Coroutine[Any, Any, float] = fetch_rate("EUR")  # the annotation is the check
    coroutine.close()
    send_receipt("1")  # type: ignore[arg-type]


def enqueue_checks_the_arguments() -> None:
    assert_type(send_receipt.enqueue(1), Job[str])
    assert_type(send_receipt.enqueue(1, resend=True), Job[str])
    send_receipt.enqueue("x")  # type: ignore[arg-type]
    send_receipt.enqueue()  # type: ignore[call-arg]
    send_receipt.enqueue(1, True)  # type: ignore[misc]
    send_receipt.enqueue(1, resnd=True)  # type: ignore[call-arg]


def using_keeps_the_types() -> None:
    assert_type(total.using(queue="slow"), JobDefinition[[int, int], int])
    assert_type(send_receipt.using(priority=5).enqueue(2), Job[str])
    send_receipt.using(priority=5).enqueue("x")  # type: ignore[arg-type]


def enqueue_by_function_checks_the_arguments() -> None:
    assert_type(enqueue(send_receipt, 1), Job[str])
    assert_type(enqueue(fetch_rate, "EUR"), Job[float])
    enqueue(send_receipt, "x")  # type: ignore[call-overload]
    enqueue(send_receipt.using(queue="slow"), "x")  # type: ignore[call-overload]
    # By name, nothing is known until enqueue() checks the arguments at run time.
    assert_type(enqueue("shop.jobs.send_receipt", "anything"), Job[Any])


def enqueue_many_knows_the_result_type() -> None:
    assert_type(send_receipt.enqueue_many([[1], {"order_id": 2}]), list[Job[str]])
    assert_type(enqueue_many(fetch_rate, [["EUR"], ["USD"]]), list[Job[float]])
    assert_type(enqueue_many("shop.jobs.send_receipt", [[1]]), list[Job[Any]])


def async_jobs_have_the_coroutines_result() -> None:
    assert_type(fetch_rate.enqueue("EUR"), Job[float])
    fetch_rate.enqueue(1)  # type: ignore[call-overload]
    assert_type(fetch_rate.using(queue="x").enqueue("EUR"), Job[float])


def the_result_is_typed() -> None:
    receipt = send_receipt.enqueue(1)
    assert_type(receipt.result, str | None)
    assert_type(receipt.wait(timeout=5), Job[str])
    assert_type(fetch_rate.enqueue("EUR").wait().result, float | None)
    receipt.wait(timeout="soon")  # type: ignore[arg-type]
    # A row read back from the database doesn't know its function.
    assert_type(Job.objects.get(pk=receipt.pk).result, Any | None)


def untyped_functions_take_anything() -> None:
    assert_type(untyped.enqueue(object()), Job[Any])


def job_options_are_checked() -> None:
    job(queue=1)  # type: ignore[call-overload]
    job(priority="high")  # type: ignore[call-overload]
    job(retries=3)  # type: ignore[call-overload]


def context_is_typed() -> None:
    assert_type(current_job(), JobContext | None)
