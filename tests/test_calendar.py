"""Working days and case deadlines: the packaged 2026 table, due times, pauses, overdue."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.cases.calendar import (
    CalendarError,
    Deadline,
    DeadlineError,
    HolidayTable,
    WorkingCalendar,
    load_holidays,
    parse_holiday_table,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkingCalendar(load_holidays())


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> float:
    """Epoch seconds of a Shanghai wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).timestamp()


def end_of(year: int, month: int, day: int) -> float:
    """The first instant after a Shanghai local day: what "due that day" means."""
    return at(year, month, day, 0) + 86_400


def table_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "year": 2027,
        "holidays": ["2027-01-01"],
        "working_weekends": [],
        "source": "an operator's table for tests",
    }
    document.update(changes)
    return document


# --- the packaged 2026 table ----------------------------------------------------------------


def test_packaged_table_holds_the_2026_arrangement() -> None:
    """The packaged table covers 2026 with 33 days off and six 补班 weekend days."""
    table = load_holidays()
    assert table.years == {2026}
    assert len(table.holidays) == 33
    assert sorted(d.isoformat() for d in table.working_weekends) == [
        "2026-01-04",
        "2026-02-14",
        "2026-02-28",
        "2026-05-09",
        "2026-09-20",
        "2026-10-10",
    ]


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 1, 2), False),  # 元旦 调休, a Friday off
        (date(2026, 1, 4), True),  # Sunday 补班
        (date(2026, 2, 16), False),  # 除夕, a Monday
        (date(2026, 2, 23), False),  # 正月初七, a Monday, last day of 春节
        (date(2026, 2, 24), True),
        (date(2026, 4, 6), False),  # 清明, Monday
        (date(2026, 5, 5), False),  # 劳动节, Tuesday
        (date(2026, 5, 9), True),  # Saturday 补班
        (date(2026, 6, 19), False),  # 端午, Friday
        (date(2026, 9, 25), False),  # 中秋, Friday
        (date(2026, 10, 7), False),  # 国庆, Wednesday
        (date(2026, 10, 10), True),  # Saturday 补班
        (date(2026, 3, 7), False),  # an ordinary Saturday
        (date(2026, 3, 9), True),  # an ordinary Monday
    ],
)
def test_working_days_follow_the_state_council_arrangement(day: date, working: bool) -> None:
    """Holidays are off, 补班 weekend days are worked, other days go by the weekday."""
    assert CALENDAR.is_working_day(day) is working


# --- due times ------------------------------------------------------------------------------


def test_friday_acceptance_with_one_day_is_due_at_the_end_of_monday() -> None:
    """A case accepted on a Friday with one working day is due when Monday ends."""
    due = CALENDAR.add_working_days(at(2026, 3, 6, 16, 30), 1)
    assert due == end_of(2026, 3, 9)
    assert CALENDAR.day_of(due - 0.001) == date(2026, 3, 9)


def test_acceptance_hour_does_not_matter() -> None:
    """A case accepted at 00:01 and one accepted at 23:59 the same day are due together."""
    early = CALENDAR.add_working_days(at(2026, 3, 10, 0, 1), 3)
    late = CALENDAR.add_working_days(at(2026, 3, 10, 23, 59), 3)
    assert early == late == end_of(2026, 3, 13)


def test_spring_festival_is_skipped_and_its_saturday_counts() -> None:
    """Across 春节 2026 the nine days off are skipped and the 补班 Saturdays count."""
    friday = at(2026, 2, 13)
    assert CALENDAR.add_working_days(friday, 1) == end_of(2026, 2, 14)  # Saturday 补班
    assert CALENDAR.add_working_days(friday, 2) == end_of(2026, 2, 24)  # Tuesday after
    assert CALENDAR.add_working_days(at(2026, 2, 27), 1) == end_of(2026, 2, 28)


def test_five_working_days_across_national_day() -> None:
    """Five working days from 29 September 2026 skip 国庆 and count the Saturday 10 October."""
    # Wed 30 Sep, then Thu 8, Fri 9, Sat 10 (补班) and Mon 12 October.
    assert CALENDAR.add_working_days(at(2026, 9, 29), 5) == end_of(2026, 10, 12)


def test_sunday_before_national_day_is_worked() -> None:
    """A case accepted on Saturday 19 September 2026 with one day is due when Sunday ends."""
    assert CALENDAR.add_working_days(at(2026, 9, 19), 1) == end_of(2026, 9, 20)


def test_weekend_acceptance_counts_from_the_next_working_day() -> None:
    """A case accepted on an ordinary Saturday with one day is due when Monday ends."""
    assert CALENDAR.add_working_days(at(2026, 3, 7), 1) == end_of(2026, 3, 9)


def test_a_year_without_a_table_raises_naming_the_year() -> None:
    """A day in a year no table covers raises CalendarError naming that year."""
    with pytest.raises(CalendarError, match="2027") as caught:
        CALENDAR.is_working_day(date(2027, 3, 1))
    assert caught.value.code == "year_not_covered"
    assert caught.value.year == 2027
    with pytest.raises(CalendarError, match="2025"):
        CALENDAR.is_working_day(date(2025, 12, 31))


def test_a_deadline_running_into_an_uncovered_year_raises() -> None:
    """A due time that would fall in a year without a table is refused, not guessed."""
    with pytest.raises(CalendarError, match="2027") as caught:
        CALENDAR.add_working_days(at(2026, 12, 28), 5)
    assert caught.value.code == "year_not_covered"


def test_the_tables_end_where_the_first_year_without_one_begins(tmp_path: Path) -> None:
    """covered_until is local midnight starting the first uncovered year from the instant's
    own year on: past a gap nothing counts, and an uncovered year ends at its own start."""
    table_2027 = tmp_path / "cn-2027.json"
    table_2027.write_text(json.dumps(table_document()), encoding="utf-8")
    with_2027 = WorkingCalendar(load_holidays([table_2027]))
    assert CALENDAR.covered_until(at(2026, 6, 1)) == at(2027, 1, 1, 0)
    assert CALENDAR.covered_until(at(2026, 12, 31, 23, 59)) == at(2027, 1, 1, 0)
    assert with_2027.covered_until(at(2026, 6, 1)) == at(2028, 1, 1, 0)
    assert with_2027.covered_until(at(2027, 6, 1)) == at(2028, 1, 1, 0)
    # A year no table covers has ended before it began; so has everything after a gap.
    assert CALENDAR.covered_until(at(2027, 3, 1)) == at(2027, 1, 1, 0)
    assert CALENDAR.covered_until(at(2025, 3, 1)) == at(2025, 1, 1, 0)
    gap = WorkingCalendar(HolidayTable(frozenset(), frozenset(), frozenset({2026, 2028})))
    assert gap.covered_until(at(2026, 3, 1)) == at(2027, 1, 1, 0)


def test_promised_days_below_one_are_refused() -> None:
    """A time limit of zero working days is not a deadline."""
    with pytest.raises(DeadlineError) as caught:
        CALENDAR.add_working_days(at(2026, 3, 2), 0)
    assert caught.value.code == "invalid_deadline"
    assert caught.value.field == "promised_days"


# --- pauses (补正) --------------------------------------------------------------------------


def test_pause_and_resume_extend_the_due_time_by_the_paused_working_days() -> None:
    """A supplement request open over three working-day ends moves the due time three days."""
    deadline = Deadline(at(2026, 3, 2), 5)  # Monday; due when Monday 9 March ends
    assert deadline.due_at(CALENDAR) == end_of(2026, 3, 9)
    # Tuesday counts; Wednesday, Thursday and Friday end inside the pause; Monday counts.
    paused = deadline.pause(at(2026, 3, 4, 10)).resume(at(2026, 3, 9, 9))
    assert paused.due_at(CALENDAR) == end_of(2026, 3, 12)


def test_pause_and_resume_on_the_same_day_cost_nothing() -> None:
    """A supplement requested and supplied within one day leaves the due time unchanged."""
    deadline = Deadline(at(2026, 3, 2), 5)
    same_day = deadline.pause(at(2026, 3, 4, 9)).resume(at(2026, 3, 4, 17))
    assert same_day.due_at(CALENDAR) == deadline.due_at(CALENDAR)


def test_pause_over_a_weekend_costs_nothing() -> None:
    """A pause that spans only non-working days leaves the due time unchanged."""
    deadline = Deadline(at(2026, 3, 2), 5)
    weekend = deadline.pause(at(2026, 3, 7, 9)).resume(at(2026, 3, 8, 17))
    assert weekend.due_at(CALENDAR) == deadline.due_at(CALENDAR)


def test_resuming_on_the_last_day_gives_back_that_day() -> None:
    """Paused on its last day, a one-day case is due when the day of the supplement ends."""
    deadline = Deadline(at(2026, 3, 6), 1).pause(at(2026, 3, 9, 10))
    assert deadline.resume(at(2026, 3, 11, 15)).due_at(CALENDAR) == end_of(2026, 3, 11)


def test_while_paused_there_is_no_due_time_and_the_count_is_frozen() -> None:
    """An open supplement request leaves no due time, no lateness and a frozen day count."""
    deadline = Deadline(at(2026, 3, 2), 5).pause(at(2026, 3, 4, 10))
    assert deadline.is_paused
    assert deadline.due_at(CALENDAR) is None
    assert not deadline.overdue(CALENDAR, at(2026, 6, 1))
    assert deadline.remaining_working_days(CALENDAR, at(2026, 3, 4, 12)) == 4
    assert deadline.remaining_working_days(CALENDAR, at(2026, 6, 1)) == 4


def test_a_pause_after_the_due_time_does_not_undo_lateness() -> None:
    """A case paused after its due time stays overdue while paused."""
    deadline = Deadline(at(2026, 3, 6), 1).pause(at(2026, 3, 11))
    assert deadline.due_at(CALENDAR) == end_of(2026, 3, 9)
    assert deadline.overdue(CALENDAR, at(2026, 3, 12))
    assert deadline.remaining_working_days(CALENDAR, at(2026, 3, 12)) == -1


def test_a_pause_while_paused_is_refused() -> None:
    """A second supplement request while one is open is refused."""
    deadline = Deadline(at(2026, 3, 2), 5).pause(at(2026, 3, 3))
    with pytest.raises(DeadlineError) as caught:
        deadline.pause(at(2026, 3, 4))
    assert caught.value.code == "already_paused"


def test_a_resume_while_running_is_refused() -> None:
    """A supplement without an open request is refused, before and after a pause."""
    deadline = Deadline(at(2026, 3, 2), 5)
    with pytest.raises(DeadlineError) as caught:
        deadline.resume(at(2026, 3, 3))
    assert caught.value.code == "not_paused"
    with pytest.raises(DeadlineError):
        deadline.pause(at(2026, 3, 3)).resume(at(2026, 3, 4)).resume(at(2026, 3, 5))


def test_an_instant_before_the_last_one_is_taken_as_the_last_one() -> None:
    """Clock skew between the two sides never makes a pause end before it starts."""
    deadline = Deadline(at(2026, 3, 2), 5).pause(at(2026, 3, 4, 10))
    resumed = deadline.resume(at(2026, 3, 4, 10) - 2)
    assert resumed.paused == ((at(2026, 3, 4, 10), at(2026, 3, 4, 10)),)
    early_pause = Deadline(at(2026, 3, 2), 5).pause(at(2026, 3, 2) - 5)
    assert early_pause.paused == ((at(2026, 3, 2), None),)


@pytest.mark.parametrize(
    "paused",
    [
        ((1.0, None),),  # before the clock started
        ((at(2026, 3, 3), None), (at(2026, 3, 4), at(2026, 3, 5))),  # open pause not last
        ((at(2026, 3, 4), at(2026, 3, 3)),),  # ends before it starts
        ((at(2026, 3, 4), at(2026, 3, 6)), (at(2026, 3, 5), None)),  # overlapping
        ((float("nan"), None),),
    ],
)
def test_malformed_pause_records_are_refused(
    paused: tuple[tuple[float, float | None], ...],
) -> None:
    """A stored deadline whose pauses are out of order is refused on construction."""
    with pytest.raises(DeadlineError) as caught:
        Deadline(at(2026, 3, 2), 5, paused)
    assert caught.value.code == "invalid_deadline"


# --- overdue --------------------------------------------------------------------------------


def test_overdue_turns_true_at_the_due_instant() -> None:
    """A case is on time until the instant its last day ends, and overdue from then on."""
    deadline = Deadline(at(2026, 3, 6, 16), 1)
    due = end_of(2026, 3, 9)
    assert not deadline.overdue(CALENDAR, due - 0.001)
    assert deadline.remaining_working_days(CALENDAR, due - 0.001) == 1
    assert deadline.overdue(CALENDAR, due)
    assert deadline.remaining_working_days(CALENDAR, due) == 0


def test_remaining_days_count_down_and_go_negative_once_overdue() -> None:
    """Remaining working days drop as each working day ends and go below zero after the due time."""
    deadline = Deadline(at(2026, 3, 2), 2)  # due when Wednesday 4 March ends
    assert deadline.remaining_working_days(CALENDAR, at(2026, 3, 2, 18)) == 2
    assert deadline.remaining_working_days(CALENDAR, at(2026, 3, 3, 18)) == 2
    assert deadline.remaining_working_days(CALENDAR, at(2026, 3, 4, 9)) == 1
    assert deadline.remaining_working_days(CALENDAR, at(2026, 3, 9, 9)) == -2  # Thu, Fri late


# --- loading tables -------------------------------------------------------------------------


def test_an_operator_file_adds_a_year(tmp_path: Path) -> None:
    """An operator's table for another year extends the calendar to that year."""
    path = tmp_path / "cn-2027.json"
    path.write_text(json.dumps(table_document()), encoding="utf-8")
    calendar = WorkingCalendar(load_holidays([path]))
    assert calendar.table.years == {2026, 2027}
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.add_working_days(at(2026, 12, 31), 1) == end_of(2027, 1, 4)


def test_an_operator_file_replaces_the_packaged_year(tmp_path: Path) -> None:
    """An operator's table for 2026 replaces the packaged one (an amended arrangement)."""
    path = tmp_path / "amended.json"
    path.write_text(json.dumps(table_document(year=2026, holidays=["2026-03-09"])), "utf-8")
    calendar = WorkingCalendar(load_holidays([path]))
    assert not calendar.is_working_day(date(2026, 3, 9))
    assert calendar.is_working_day(date(2026, 10, 2))  # 2 October is no longer off


def test_two_operator_files_for_one_year_are_refused(tmp_path: Path) -> None:
    """Two operator tables for the same year are refused instead of merged."""
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        path.write_text(json.dumps(table_document()), encoding="utf-8")
    with pytest.raises(CalendarError, match="2027") as caught:
        load_holidays(paths)
    assert caught.value.code == "invalid_holiday_table"


def test_an_unreadable_operator_file_is_refused(tmp_path: Path) -> None:
    """A configured holiday file that is missing or not JSON is refused, naming the file."""
    with pytest.raises(CalendarError, match=r"missing\.json"):
        load_holidays([tmp_path / "missing.json"])
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(CalendarError, match=r"broken\.json: file: is not valid JSON"):
        load_holidays([broken])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"holiday": []}, "holiday"),
        ({"year": "2027"}, "year"),
        ({"year": True}, "year"),
        ({"source": ""}, "source"),
        ({"holidays": "2027-01-01"}, "holidays"),
        ({"holidays": ["2027-1-1"]}, "holidays[0]"),
        ({"holidays": ["2027-02-30"]}, "holidays[0]"),
        ({"holidays": ["2026-11-30"]}, "holidays[0]"),
        ({"holidays": ["2027-01-01", "2027-01-01"]}, "holidays[1]"),
        ({"working_weekends": ["2027-01-04"]}, "working_weekends"),  # a Monday
        ({"working_weekends": ["2027-01-02"], "holidays": ["2027-01-02"]}, "working_weekends"),
    ],
)
def test_malformed_tables_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    """A holiday table with a wrong, missing or contradictory field is refused, naming it."""
    document = table_document(**changes)
    if "holiday" in changes:
        del document["holidays"]
    with pytest.raises(CalendarError) as caught:
        parse_holiday_table(document, origin="cn-2027.json")
    assert caught.value.code == "invalid_holiday_table"
    assert caught.value.field == field
    assert str(caught.value).startswith(f"cn-2027.json: {field}: ")


def test_a_new_year_holiday_may_start_in_the_previous_december() -> None:
    """A table may list days in the December before its year, as the 2019 notice did."""
    table = parse_holiday_table(
        table_document(
            year=2019,
            holidays=["2018-12-30", "2018-12-31", "2019-01-01"],
            working_weekends=["2018-12-29"],
        )
    )
    assert date(2018, 12, 29) in table.working_weekends


def test_tables_that_disagree_on_a_day_are_refused() -> None:
    """Two tables that call the same day a holiday and a working day do not merge."""
    first = HolidayTable(frozenset({date(2026, 12, 27)}), frozenset(), frozenset({2026}))
    second = HolidayTable(frozenset(), frozenset({date(2026, 12, 27)}), frozenset({2027}))
    with pytest.raises(CalendarError, match="2026-12-27"):
        first.union(second)


def test_an_unknown_time_zone_is_refused() -> None:
    """A calendar in a time zone the system does not know is refused with a hint."""
    with pytest.raises(CalendarError, match="tzdata") as caught:
        WorkingCalendar(load_holidays(), tz="Asia/Nowhere")
    assert caught.value.code == "unknown_time_zone"


# --- properties -----------------------------------------------------------------------------

# Acceptances up to 1 August 2026 with at most 60 days (and a month of pauses) stay inside
# the 2026 table.
acceptances = st.floats(min_value=at(2026, 1, 1, 0), max_value=at(2026, 8, 1, 0))
promised = st.integers(min_value=1, max_value=59)


@given(start=acceptances, days=promised)
def test_due_time_grows_with_the_promised_days_and_ends_a_working_day(
    start: float, days: int
) -> None:
    """One more promised day always moves the due time later, to the end of a working day."""
    due = CALENDAR.add_working_days(start, days)
    later = CALENDAR.add_working_days(start, days + 1)
    assert due < later
    for instant in (due, later):
        last_day = CALENDAR.day_of(instant - 0.001)
        assert CALENDAR.is_working_day(last_day)
        assert instant == CALENDAR.end_of_day(last_day)
        assert last_day > CALENDAR.day_of(start)


@given(
    start=acceptances,
    days=promised,
    # At most a month of pauses, so that the due time stays inside the 2026 table.
    offsets=st.lists(st.floats(min_value=0, max_value=5 * 86_400), max_size=6),
)
def test_pauses_never_bring_the_due_time_forward(
    start: float, days: int, offsets: list[float]
) -> None:
    """However a case is paused and resumed, it is due no earlier, at the end of a working day."""
    deadline = Deadline(start, days)
    instant = start
    for offset in offsets:
        instant += offset
        deadline = deadline.resume(instant) if deadline.is_paused else deadline.pause(instant)
    if deadline.is_paused:
        deadline = deadline.resume(instant)
    due = deadline.due_at(CALENDAR)
    assert due is not None
    assert due >= CALENDAR.add_working_days(start, days)
    assert CALENDAR.is_working_day(CALENDAR.day_of(due - 0.001))


@given(start=acceptances, days=promised, elapsed=st.floats(min_value=0, max_value=90 * 86_400))
def test_overdue_exactly_when_no_days_remain(start: float, days: int, elapsed: float) -> None:
    """A case is overdue exactly when its remaining working days have reached zero."""
    deadline = Deadline(start, days)
    now = start + elapsed
    assert deadline.overdue(CALENDAR, now) == (deadline.remaining_working_days(CALENDAR, now) <= 0)


def test_days_are_local_to_shanghai() -> None:
    """A UTC evening is already the next day in Shanghai."""
    utc_evening = datetime(2026, 3, 6, 20, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert CALENDAR.day_of(utc_evening) == date(2026, 3, 7)
    assert CALENDAR.end_of_day(date(2026, 3, 6)) - at(2026, 3, 6, 0) == timedelta(1).total_seconds()
