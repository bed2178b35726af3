"""flow.py: rates, key templates and admit(), with no database."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import pytest

from django_jobs.exceptions import InvalidJobOptions
from django_jobs.flow import (
    Candidate,
    Limits,
    Rate,
    Usage,
    admit,
    fair_share,
    gates_of,
    key_template,
    merge_limits,
    parse_rate,
)
from django_jobs.registry import job

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30/m", Rate(30, 60)), ("5/s", Rate(5, 1)), (" 100 / h ", Rate(100, 3600)), ("2/d", Rate(2, 86400)),
     ((10, timedelta(seconds=90)), Rate(10, 90))],
)
def test_parse_rate__accepts_celery_forms_and_tuples(value: object, expected: Rate) -> None:
    assert parse_rate(value) == expected


@pytest.mark.parametrize("value", ["30/min", "30", "/m", "0/m", "-1/s", (3, 60), (0, timedelta(seconds=1)), 30,
                                   (1, timedelta(days=8))])
def test_parse_rate__refuses_bad_values_naming_the_accepted_forms(value: object) -> None:
    with pytest.raises(InvalidJobOptions) as exc:
        parse_rate(value)
    assert "rate=" in str(exc.value)


def test_rate__prints_in_the_form_it_is_written() -> None:
    assert str(Rate(30, 60)) == "30/m" and str(Rate(10, 90)) == "10/90s"


def sync_account(account_id: str, full: bool = False) -> None: ...


def test_key_template__renders_from_bound_arguments() -> None:
    template = key_template("concurrency_key", "account:{account_id}", inspect.signature(sync_account), "f")
    assert template.render({"account_id": "acct_1", "full": False}) == "account:acct_1"


@pytest.mark.parametrize(
    ("template", "words"),
    [("account:{acount_id}", "isn't one of its parameters"), ("{}", "positional field"),
     ("{0}", "positional field"), ("account:{account_id", "valid format string"), ("", "str.format template")],
)
def test_key_template__refuses_what_cannot_render(template: str, words: str) -> None:
    with pytest.raises(InvalidJobOptions, match=words):
        key_template("concurrency_key", template, inspect.signature(sync_account), "sync_account")


def test_key_template__a_callable_gets_the_arguments_by_name() -> None:
    template = key_template("rate_key", lambda account_id, full: f"a:{account_id}", inspect.signature(sync_account), "f")
    assert template.render({"account_id": "x", "full": True}) == "a:x"


def test_key_template__a_key_that_cannot_be_stored_is_an_error() -> None:
    template = key_template("rate_key", "{account_id}", inspect.signature(sync_account), "f")
    with pytest.raises(InvalidJobOptions, match="over the limit"):
        template.render({"account_id": "x" * 300})
    with pytest.raises(InvalidJobOptions, match="non-empty"):
        template.render({"account_id": ""})


@pytest.mark.parametrize(
    ("options", "words"),
    [({"concurrency": 0}, "never run a job"), ({"concurrency": "2"}, "must be an int"),
     ({"concurrency_key": "a:{account_id}"}, "needs concurrency"), ({"rate_key": "a"}, "needs rate"),
     ({"rate": "fast"}, "isn't a rate"), ({"sequence_on_dead": "continue"}, "only with a sequence_key"),
     ({"sequence_key": "c:{x}"}, "isn't one of its parameters"),
     ({"sequence_key": "c", "sequence_on_dead": "skip"}, '"block"')],
)
def test_job__bad_flow_options_fail_at_decoration(options: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidJobOptions, match=words):
        job(name="tests.unit.flow_bad", **options)(sync_account)


def candidate(i: int, **kw: object) -> Candidate:
    return Candidate(i, kw.pop("name", "n"), kw.pop("queue", "q"), kw.pop("priority", 0), NOW, **kw)  # type: ignore[arg-type]


def test_admit__fills_a_concurrency_limit_and_holds_the_rest() -> None:
    limits = Limits(concurrency={"n": 2})
    usage = Usage(running={("concurrency", "k"): [7]})
    decision = admit([candidate(i, concurrency_key="k") for i in range(1, 5)], limits, usage, NOW, 10)
    assert decision.ids == [1]
    assert decision.held[2] == "held by the concurrency limit `k`: 2 of 2 running (job #7)"


def test_admit__claim_order_is_priority_then_run_at_then_id() -> None:
    limits = Limits(concurrency={"n": 1})
    c = [candidate(1, concurrency_key="k"), candidate(2, concurrency_key="k", priority=5)]
    assert admit(c, limits, Usage(), NOW, 10).ids == [2]


def test_admit__a_rate_counts_starts_in_the_window_and_says_when_it_opens() -> None:
    limits = Limits(rate={"n": Rate(3, 60)})
    usage = Usage(starts={"n": (2, NOW - timedelta(seconds=50))})
    decision = admit([candidate(i) for i in range(1, 4)], limits, usage, NOW, 10)
    assert decision.ids == [1]
    assert decision.next_start == NOW + timedelta(seconds=10)
    assert decision.held[2] == "rate `3/m` reached: next start in 10 s"


def test_admit__says_when_idle_children_not_the_rate_left_rated_jobs_behind() -> None:
    limits = Limits(rate={"n": Rate(100, 1)})
    rated = [candidate(i) for i in range(1, 4)]
    short = admit(rated, limits, Usage(), NOW, 10, rate_want=1)
    assert (short.ids, short.rate_bound, short.held) == ([1], True, {})
    assert not admit(rated, limits, Usage(), NOW, 10, rate_want=3).rate_bound
    full = Usage(starts={"n": (100, NOW - timedelta(seconds=0.5))})
    assert not admit(rated, limits, full, NOW, 10, rate_want=1).rate_bound  # the rate holds them


def test_admit__a_sequence_runs_its_head_only() -> None:
    usage = Usage(heads={"s": (1, "queued")})
    decision = admit([candidate(1, sequence_key="s"), candidate(2, sequence_key="s")], Limits(), usage, NOW, 10)
    assert decision.ids == [1]
    busy = Usage(heads={"s": (1, "running")}, sequence_running={"s": 1})
    assert admit([candidate(2, sequence_key="s")], Limits(), busy, NOW, 10).ids == []
    dead = Usage(heads={"s": (1, "dead")})
    assert admit([candidate(2, sequence_key="s")], Limits(), dead, NOW, 10).held[2] == "sequence `s` is blocked by dead job #1"


def test_admit__every_gate_must_be_open() -> None:
    limits = Limits(concurrency={"n": 5}, queue_concurrency={"q": 1})
    decision = admit([candidate(1, concurrency_key="k"), candidate(2, concurrency_key="k")], limits, Usage(), NOW, 10)
    assert decision.ids == [1]
    assert "queue `q`" in decision.held[2]


def test_admit__never_more_than_wanted() -> None:
    assert admit([candidate(i, concurrency_key=f"k{i}") for i in range(10)], Limits(concurrency={"n": 1}),
                 Usage(), NOW, 3).ids == [0, 1, 2]


def test_fair_share__a_worker_may_hold_its_children_s_part_of_the_slots_rounded_up() -> None:
    limits = Limits(concurrency={"n": 1})
    keys = [gate for i in range(100) for gate in gates_of(candidate(i, concurrency_key=f"k{i}"), limits)]
    assert fair_share(keys, 2, 4) == 50
    assert fair_share(keys, 2, 2) == 100  # alone
    assert fair_share(keys, 1, 3) == 34
    assert fair_share(keys[:1], 2, 8) == 1  # every worker may hold one
    assert fair_share(keys + keys, 2, 4) == 50  # a gate counts once


def test_fair_share__counts_each_gate_s_slots_and_no_rates() -> None:
    limits = Limits(concurrency={"n": 3}, rate={"r": Rate(5, 1)}, queue_concurrency={"q2": 4})
    gates = [*gates_of(candidate(1, concurrency_key="k"), limits), *gates_of(candidate(2, name="r"), limits),
             *gates_of(candidate(3, name="m", queue="q2"), limits), *gates_of(candidate(4, name="m", sequence_key="s"), limits)]
    assert fair_share(gates, 1, 1) == 3 + 4 + 1
    assert fair_share(gates_of(candidate(2, name="r"), limits), 1, 1) == 0


def test_admit__no_more_slots_than_the_share_and_rates_beside_them() -> None:
    limits = Limits(concurrency={"n": 1}, rate={"r": Rate(100, 1)})
    keyed = [candidate(i, concurrency_key=f"k{i}") for i in range(10)]
    rated = [candidate(i, name="r") for i in range(10, 13)]
    decision = admit(keyed + rated, limits, Usage(), NOW, 20, slot_want=4)
    assert decision.ids == [0, 1, 2, 3, 10, 11, 12]
    assert not decision.held  # left to other workers, not held by a limit


def test_merge_limits__operators_replace_code_and_settings() -> None:
    code = Limits(concurrency={"a": 1}, rate={"a": Rate(1, 1)})
    merged = merge_limits(code, {"partner": {"concurrency": 4, "rate": "100/m"}},
                          [("name", "a", 3, ""), ("queue", "partner", None, "10/m"), ("name", "b", None, "1/s")])
    assert merged.concurrency == {"a": 3} and merged.rate == {"a": Rate(1, 1), "b": Rate(1, 1)}
    assert merged.queue_concurrency == {"partner": 4} and merged.queue_rate == {"partner": Rate(10, 60)}
    assert merged.limited_names == ["a", "b"] and merged.limited_queues == ["partner"]


def test_gates_of__a_job_without_a_key_counts_under_its_name() -> None:
    gates = gates_of(candidate(1), Limits(concurrency={"n": 2}, rate={"n": Rate(1, 1)}))
    assert [(g.kind, g.key) for g in gates] == [("concurrency", "n"), ("rate", "n")]
