"""cron.py: parsing with clear refusals, timezones, fire times across DST, descriptions. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from django_jobs import cron
from django_jobs.exceptions import InvalidCron, InvalidSchedule

UTC = UTC


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def berlin(times: list[datetime], fmt: str) -> list[str]:
    return [t.astimezone(cron.zone("Europe/Berlin")).strftime(fmt) for t in times]


# -- parse -----------------------------------------------------------------------------------------


def test_parse__collapses_whitespace() -> None:
    assert cron.parse("  5   0 * *\t* ") == "5 0 * * *"


@pytest.mark.parametrize(("nickname", "fields"), [("@daily", "0 0 * * *"), ("@HOURLY", "0 * * * *"), ("@weekly", "0 0 * * 0")])
def test_parse__writes_nicknames_out_as_five_fields(nickname: str, fields: str) -> None:
    assert cron.parse(nickname) == fields


def test_parse__names_of_months_and_days_are_accepted() -> None:
    assert cron.parse("0 9 * jan-mar mon-fri") == "0 9 * jan-mar mon-fri"


def test_parse__four_fields_are_refused_naming_the_five() -> None:
    with pytest.raises(InvalidCron) as excinfo:
        cron.parse("5 0 * *")
    assert str(excinfo.value) == (
        "'5 0 * *' has 4 fields; a cron expression needs 5: minute hour day-of-month month day-of-week"
    )


def test_parse__a_seconds_field_is_refused() -> None:
    with pytest.raises(InvalidCron, match=r"'0 5 0 \* \* \*' has 6 fields; a cron expression needs 5"):
        cron.parse("0 5 0 * * *")


def test_parse__empty_is_refused_with_an_example() -> None:
    with pytest.raises(InvalidCron, match="empty.*'5 0 \\* \\* \\*'"):
        cron.parse("   ")


@pytest.mark.parametrize(
    ("expression", "field", "accepts"),
    [
        ("61 0 * * *", "minute field '61'", "0-59"),
        ("0 24 * * *", "hour field '24'", "0-23"),
        ("0 0 32 * *", "day-of-month field '32'", "1-31"),
        ("0 0 * 13 *", "month field '13'", "1-12 or jan-dec"),
        ("0 0 * * 8", "day-of-week field '8'", "0-7 or sun-sat"),
        ("x 0 * * *", "minute field 'x'", "0-59"),
        ("*/0 * * * *", "minute field '*/0'", "0-59"),
    ],
)
def test_parse__a_bad_field_is_named_with_what_it_takes(expression: str, field: str, accepts: str) -> None:
    with pytest.raises(InvalidCron) as excinfo:
        cron.parse(expression)
    message = str(excinfo.value)
    assert f"the {field} is not valid" in message
    assert accepts in message


def test_parse__hashed_and_random_values_are_refused() -> None:
    with pytest.raises(InvalidCron, match="H or R .* different time on each worker"):
        cron.parse("H 0 * * *")


def test_parse__a_date_that_never_exists_is_refused() -> None:
    with pytest.raises(InvalidCron, match="never fires: no date matches its day-of-month '30' in month '2'"):
        cron.parse("0 0 30 2 *")


def test_parse__an_unknown_nickname_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(InvalidCron, match="'@reboot' is not a cron nickname .*@daily"):
        cron.parse("@reboot")


def test_invalid_cron__is_a_value_error_and_an_invalid_schedule() -> None:
    assert issubclass(InvalidCron, ValueError)
    assert issubclass(InvalidCron, InvalidSchedule)


# -- zone ------------------------------------------------------------------------------------------


def test_zone__returns_the_iana_zone() -> None:
    assert str(cron.zone("Europe/Berlin")) == "Europe/Berlin"


def test_zone__an_unknown_name_is_refused_with_a_suggestion() -> None:
    with pytest.raises(InvalidCron, match="'Europe/Berln' is not a timezone .*Did you mean 'Europe/Berlin'"):
        cron.zone("Europe/Berln")


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "Not/AZone"])
def test_zone__empty_or_malformed_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidCron, match="timezone"):
        cron.zone(name)


# -- fire times ------------------------------------------------------------------------------------


def test_next_after__is_strictly_after_a_tick() -> None:
    assert cron.next_after("* * * * *", "UTC", utc(2030, 1, 1, 10, 0)) == utc(2030, 1, 1, 10, 1)
    assert cron.next_after("* * * * *", "UTC", utc(2030, 1, 1, 9, 59, 59, 999999)) == utc(2030, 1, 1, 10, 0)


def test_next_after__reads_the_cron_on_the_zones_wall_clock() -> None:
    # 00:05 in Berlin in winter (UTC+1) is 23:05 UTC the day before.
    tick = cron.next_after("5 0 * * *", "Europe/Berlin", utc(2030, 1, 1, 12, 0))
    assert tick == utc(2030, 1, 1, 23, 5)
    assert tick.tzinfo == UTC


def test_next_after__refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        cron.next_after("* * * * *", "UTC", datetime(2030, 1, 1))


def test_next_times__lists_consecutive_ticks() -> None:
    times = cron.next_times("0 9 * * mon-fri", "UTC", utc(2030, 1, 4, 12, 0), 3)  # a Friday
    assert times == [utc(2030, 1, 7, 9), utc(2030, 1, 8, 9), utc(2030, 1, 9, 9)]


def test_dst__a_time_the_clocks_skip_fires_once_at_the_end_of_the_gap() -> None:
    # Europe/Berlin, 2025-03-30: clocks jump from 02:00 CET to 03:00 CEST; 02:30 doesn't exist.
    times = cron.next_times("30 2 * * *", "Europe/Berlin", utc(2025, 3, 28, 12), 3)
    assert times == [utc(2025, 3, 29, 1, 30), utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 30)]
    assert berlin(times, "%d %H:%M %Z") == ["29 02:30 CET", "30 03:00 CEST", "31 02:30 CEST"]


def test_dst__a_time_the_clocks_repeat_fires_in_both_hours() -> None:
    # Europe/Berlin, 2025-10-26: clocks go back from 03:00 CEST to 02:00 CET; 02:30 happens twice.
    times = cron.next_times("30 2 * * *", "Europe/Berlin", utc(2025, 10, 25, 12), 3)
    assert times == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30), utc(2025, 10, 27, 1, 30)]
    assert berlin(times, "%d %H:%M %Z") == ["26 02:30 CEST", "26 02:30 CET", "27 02:30 CET"]


def test_dst__a_frequent_schedule_collapses_the_skipped_hour_and_repeats_the_doubled_one() -> None:
    spring = cron.next_times("*/30 * * * *", "Europe/Berlin", utc(2025, 3, 30, 0, 15), 3)
    assert berlin(spring, "%H:%M %Z") == ["01:30 CET", "03:00 CEST", "03:30 CEST"]
    autumn = cron.next_times("*/30 * * * *", "Europe/Berlin", utc(2025, 10, 25, 23, 45), 6)
    assert berlin(autumn, "%H:%M %Z") == [
        "02:00 CEST", "02:30 CEST", "02:00 CET", "02:30 CET", "03:00 CET", "03:30 CET",
    ]


def test_dst__new_york_skips_forward_too() -> None:
    # America/New_York, 2025-03-09: 02:00 EST jumps to 03:00 EDT.
    times = cron.next_times("30 2 * * *", "America/New_York", utc(2025, 3, 8, 12), 2)
    assert times == [utc(2025, 3, 9, 7, 0), utc(2025, 3, 10, 6, 30)]
    local = [t.astimezone(cron.zone("America/New_York")).strftime("%d %H:%M %Z") for t in times]
    assert local == ["09 03:00 EDT", "10 02:30 EDT"]


# -- latest_times ----------------------------------------------------------------------------------


def test_latest_times__includes_both_ends_and_keeps_the_latest() -> None:
    times = cron.latest_times("0 * * * *", "UTC", since=utc(2030, 1, 1, 10), until=utc(2030, 1, 1, 13), limit=10)
    assert times == [utc(2030, 1, 1, h) for h in (10, 11, 12, 13)]
    times = cron.latest_times("0 * * * *", "UTC", since=utc(2030, 1, 1, 10), until=utc(2030, 1, 1, 13), limit=2)
    assert times == [utc(2030, 1, 1, 12), utc(2030, 1, 1, 13)]


def test_latest_times__empty_when_nothing_is_due() -> None:
    assert cron.latest_times("0 * * * *", "UTC", since=utc(2030, 1, 1, 10, 1), until=utc(2030, 1, 1, 10, 59), limit=5) == []
    assert cron.latest_times("0 * * * *", "UTC", since=utc(2030, 1, 1, 11), until=utc(2030, 1, 1, 10), limit=5) == []


def test_latest_times__after_a_year_of_minutes_agrees_with_walking_forwards() -> None:
    until = utc(2031, 1, 1, 0, 0, 30)
    times = cron.latest_times("* * * * *", "Europe/Berlin", since=utc(2030, 1, 1), until=until, limit=3)
    assert times == cron.next_times("* * * * *", "Europe/Berlin", until - timedelta(minutes=3), 3)


def test_latest_times__agrees_with_next_times_across_the_autumn_transition() -> None:
    since = utc(2025, 10, 25, 23, 0)
    expected = cron.next_times("*/30 * * * *", "Europe/Berlin", since - timedelta(seconds=1), 8)
    assert cron.latest_times("*/30 * * * *", "Europe/Berlin", since=since, until=expected[-1], limit=8) == expected


# -- describe --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("5 0 * * *", "At 00:05, every day"),
        ("30 2 * * 1-5", "At 02:30, Monday through Friday"),
        ("0 9 1 * *", "At 09:00, on day 1 of the month"),
    ],
)
def test_describe__puts_the_expression_in_words(expression: str, words: str) -> None:
    assert cron.describe(expression) == words


def test_describe__falls_back_to_the_expression() -> None:
    assert cron.describe("not a cron") == "not a cron"


def test_cron_module__is_the_only_one_importing_croniter() -> None:
    from pathlib import Path

    package = Path(cron.__file__).parent
    importers = sorted(
        p.name for p in package.rglob("*.py") if "croniter" in p.read_text() and "import" in p.read_text()
        and any(line.lstrip().startswith(("import croniter", "from croniter")) for line in p.read_text().splitlines())
    )
    assert importers == ["cron.py"]


def test_latest_at_or_before__includes_the_moment_itself() -> None:
    assert cron.latest_at_or_before("0 * * * *", "UTC", utc(2030, 1, 7, 10, 0)) == utc(2030, 1, 7, 10, 0)
    assert cron.latest_at_or_before("0 * * * *", "UTC", utc(2030, 1, 7, 10, 59)) == utc(2030, 1, 7, 10, 0)
    # In the schedule's zone: 03:00 in Berlin is 02:00 UTC in winter.
    assert cron.latest_at_or_before("0 3 * * *", "Europe/Berlin", utc(2030, 1, 7, 12, 0)) == utc(2030, 1, 7, 2, 0)
