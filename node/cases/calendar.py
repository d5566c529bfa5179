"""Working days and case deadlines (承诺时限): the due time of an accepted case.

A matter's promised time limit is in working days (DOMAIN.md); the handler's acceptance
(受理) starts the clock, a supplement request (补正) pauses it and the supplement resumes it.
Everything here is synchronous and pure: instants are epoch seconds passed in by the
caller, and the only I/O is reading holiday tables in ``load_holidays``. Rules it keeps:

1. Days are local days in Asia/Shanghai. A day is a working day when it is a Monday to
   Friday that is not a public holiday, or a Saturday or Sunday that the State Council's
   arrangement makes a working day (调休补班). Holidays and 补班 days come from holiday
   tables, one per year (``holidays/cn-<year>.json``, the 国务院办公厅 notice for that
   year); operators load further years, or a corrected year, from files of their own.
2. A day in a year that no table covers is never guessed at: asking about it raises a
   ``CalendarError`` (``year_not_covered``) that names the year.
3. The day of acceptance never counts, whatever the hour (期间开始的当日不计入, 民法典
   第二百零一条). A later working day counts towards the limit when the clock is running at
   its end; the limit is reached at the end of the Nth counted day. "Due Monday" therefore
   means due at the first instant of Tuesday, local time: ``due_at`` is that instant, and
   a case is overdue from it on (``now >= due_at``). Half-open, so there is no
   23:59:59.999 to round.
4. 补正 time is not counted: a working day whose end falls inside a pause does not count,
   and the clock resumes with the days that remained. A pause and resume on the same day
   cost nothing; a pause over three working-day ends moves the due time three working days
   later. Paused days are not looked up, so a long pause never needs a table for them.
5. While paused with days remaining there is no due time (``due_at`` is None) and the case
   is not overdue. A pause cannot undo lateness: a case paused after its due time stays
   overdue. ``overdue(now)`` holds exactly when ``remaining_working_days(now) <= 0``.
6. Whether a case is still open is the caller's business: a concluded or withdrawn case is
   not overdue, whatever its deadline says.
7. ``pause`` while paused and ``resume`` while running are refused (``DeadlineError``). An
   instant earlier than the last one recorded is taken as that one: the two sides' clocks
   may disagree by a little, and the order of events is given by the case's sequence
   numbers, not by the clocks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import MAXYEAR, MINYEAR, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CalendarErrorCode = Literal["year_not_covered", "invalid_holiday_table", "unknown_time_zone"]
DeadlineErrorCode = Literal["already_paused", "not_paused", "invalid_deadline"]

DEFAULT_TIME_ZONE: Final = "Asia/Shanghai"

_TABLE_FIELDS: Final = frozenset({"year", "holidays", "working_weekends", "source"})
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_SATURDAY: Final = 5
_ONE_DAY: Final = timedelta(days=1)


class CalendarError(ValueError):
    """A holiday table was refused, or a day's status cannot be known.

    ``code`` is stable and machine-readable; ``field`` names the field at fault
    (``holidays[3]``, ``day``, ``tz``); ``detail`` (also ``str(error)``) starts with the
    table's origin when there is one, then the field. ``year`` is the year that no table
    covers, for ``year_not_covered``.
    """

    def __init__(
        self,
        code: CalendarErrorCode,
        field: str,
        sentence: str,
        *,
        origin: str | None = None,
        year: int | None = None,
    ) -> None:
        detail = f"{field}: {sentence}" if origin is None else f"{origin}: {field}: {sentence}"
        super().__init__(detail)
        self.code: CalendarErrorCode = code
        self.field = field
        self.origin = origin
        self.year = year
        self.sentence = sentence
        self.detail = detail


class DeadlineError(ValueError):
    """A deadline was malformed, or paused or resumed out of turn; nothing changed."""

    def __init__(self, code: DeadlineErrorCode, field: str, sentence: str) -> None:
        detail = f"{field}: {sentence}"
        super().__init__(detail)
        self.code: DeadlineErrorCode = code
        self.field = field
        self.detail = detail


# --- holiday tables -------------------------------------------------------------------------


@dataclass(frozen=True)
class HolidayTable:
    """Public holidays and 补班 weekend days for the years in ``years``."""

    holidays: frozenset[date]
    """Days off by the State Council's arrangement, weekend days of a holiday stretch included."""
    working_weekends: frozenset[date]
    """Saturdays and Sundays worked in exchange for a holiday (调休补班)."""
    years: frozenset[int]
    """The years whose arrangement is loaded; other years' days are refused, not guessed."""

    def __post_init__(self) -> None:
        both = self.holidays & self.working_weekends
        if both:
            raise CalendarError(
                "invalid_holiday_table",
                "working_weekends",
                f"{min(both).isoformat()} is both a holiday and a working weekend day",
            )
        weekday = next((d for d in self.working_weekends if d.weekday() < _SATURDAY), None)
        if weekday is not None:
            raise CalendarError(
                "invalid_holiday_table",
                "working_weekends",
                f"{weekday.isoformat()} is a weekday, so it cannot be a 补班 weekend day",
            )

    def union(self, other: HolidayTable) -> HolidayTable:
        """Both tables' years together; a year in both, or a day they disagree on, is refused."""
        shared = self.years & other.years
        if shared:
            raise CalendarError(
                "invalid_holiday_table", "year", f"{min(shared)} is in two holiday tables"
            )
        return HolidayTable(
            holidays=self.holidays | other.holidays,
            working_weekends=self.working_weekends | other.working_weekends,
            years=self.years | other.years,
        )


EMPTY_TABLE: Final = HolidayTable(frozenset(), frozenset(), frozenset())


def load_holidays(extra: Iterable[Path] = (), *, packaged: bool = True) -> HolidayTable:
    """The packaged tables (``holidays/*.json``) merged with the operator's ``extra`` files.

    An extra file for a year that a packaged table also covers replaces the packaged one
    (the State Council has amended a published arrangement before, as in 2019 and 2020);
    two extra files for the same year are refused.
    """
    by_year: dict[int, HolidayTable] = {}
    if packaged:
        folder = resources.files(__package__ or "node.cases") / "holidays"
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
            if entry.name.endswith(".json"):
                year, table = _parse_json(entry.read_text(encoding="utf-8"), entry.name)
                # union refuses a year that two packaged tables both cover
                by_year[year] = by_year[year].union(table) if year in by_year else table
    from_files: set[int] = set()
    for path in extra:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise CalendarError(
                "invalid_holiday_table", "file", f"cannot be read: {error}", origin=str(path)
            ) from None
        year, table = _parse_json(text, str(path))
        if year in from_files:
            raise CalendarError(
                "invalid_holiday_table",
                "year",
                f"{year} is already covered by another holiday file",
                origin=str(path),
            )
        from_files.add(year)
        by_year[year] = table
    merged = EMPTY_TABLE
    for year in sorted(by_year):
        merged = merged.union(by_year[year])
    return merged


def parse_holiday_table(data: object, *, origin: str = "holiday table") -> HolidayTable:
    """Validate one year's table, already decoded from JSON; ``origin`` names it in errors.

    The document is ``{"year", "holidays", "working_weekends", "source"}``, dates written
    ``YYYY-MM-DD``. A date lies in the table's year or in the December before it: a New
    Year holiday may start in the old year (the 2019 notice set days off from 2018-12-30).
    """
    return _parse_document(data, origin)[1]


def _parse_json(text: str, origin: str) -> tuple[int, HolidayTable]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CalendarError(
            "invalid_holiday_table", "file", f"is not valid JSON: {error}", origin=origin
        ) from None
    return _parse_document(data, origin)


def _parse_document(data: object, origin: str) -> tuple[int, HolidayTable]:
    def refuse(field: str, sentence: str) -> CalendarError:
        return CalendarError("invalid_holiday_table", field, sentence, origin=origin)

    if not isinstance(data, Mapping):
        raise refuse("table", "a holiday table is a JSON object")
    unknown = sorted(str(key) for key in data if key not in _TABLE_FIELDS)
    if unknown:
        raise refuse(unknown[0], "is not a holiday table field")
    missing = sorted(_TABLE_FIELDS - data.keys())
    if missing:
        raise refuse(missing[0], "is missing")
    year = data["year"]
    if isinstance(year, bool) or not isinstance(year, int) or not MINYEAR < year <= MAXYEAR:
        raise refuse("year", f"{year!r} is not a year")
    source = data["source"]
    if not isinstance(source, str) or not source.strip():
        raise refuse("source", "names the notice the dates come from, so it cannot be empty")
    holidays = _parse_dates(data["holidays"], "holidays", year, refuse)
    working = _parse_dates(data["working_weekends"], "working_weekends", year, refuse)
    try:
        table = HolidayTable(frozenset(holidays), frozenset(working), frozenset({year}))
    except CalendarError as error:
        raise refuse(error.field, error.sentence) from None
    return year, table


def _parse_dates(
    value: object, name: str, year: int, refuse: Callable[[str, str], CalendarError]
) -> list[date]:
    if not isinstance(value, list):
        raise refuse(name, "is a list of dates written YYYY-MM-DD")
    days: list[date] = []
    for index, item in enumerate(value):
        path = f"{name}[{index}]"
        if not isinstance(item, str) or not _ISO_DATE.fullmatch(item):
            raise refuse(path, f"{item!r} is not a date written YYYY-MM-DD")
        try:
            day = date.fromisoformat(item)
        except ValueError:
            raise refuse(path, f"{item!r} is not a date in the calendar") from None
        if day.year != year and not (day.year == year - 1 and day.month == 12):
            raise refuse(path, f"{item} is outside {year} and the December before it")
        if day in days:
            raise refuse(path, f"{item} is listed twice")
        days.append(day)
    return days


# --- the working-day calendar ---------------------------------------------------------------


class WorkingCalendar:
    """Which local days are working days (rules 1 and 2), and where local days begin and end."""

    def __init__(self, table: HolidayTable, tz: str = DEFAULT_TIME_ZONE) -> None:
        try:
            self._zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(
                "unknown_time_zone",
                "tz",
                f"{tz!r} is not a time zone this system knows (install the tzdata package)",
            ) from None
        self.table = table
        self.tz = tz

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day; a year without a table raises ``CalendarError``."""
        if day.year not in self.table.years:
            raise CalendarError(
                "year_not_covered",
                "day",
                f"{day.isoformat()} is in {day.year}, which no holiday table covers; load the "
                f"国务院办公厅关于{day.year}年部分节假日安排的通知 as a holiday table",
                year=day.year,
            )
        if day in self.table.working_weekends:
            return True
        return day not in self.table.holidays and day.weekday() < _SATURDAY

    def day_of(self, instant: float) -> date:
        """The local day that ``instant`` (epoch seconds) falls on."""
        return datetime.fromtimestamp(instant, self._zone).date()

    def end_of_day(self, day: date) -> float:
        """The first instant after ``day``: local midnight at the start of the next day."""
        return datetime.combine(day + _ONE_DAY, time(), tzinfo=self._zone).timestamp()

    def covered_until(self, instant: float) -> float:
        """The first instant no holiday table covers from ``instant``'s year on: local
        midnight starting the first year after it without a table (the start of ``instant``'s
        own year when that one has none). A due time is known only before it (rule 2)."""
        year = self.day_of(instant).year
        while year in self.table.years and year < MAXYEAR:
            year += 1
        return datetime.combine(date(year, 1, 1), time(), tzinfo=self._zone).timestamp()

    def add_working_days(self, start: float, days: int) -> float:
        """The due time of ``days`` working days from ``start``, with no pause (rule 3)."""
        due = Deadline(start, days).due_at(self)
        assert due is not None, "a clock that never paused always reaches its limit"
        return due


# --- deadlines ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """A case's clock: started at acceptance, paused for each supplement request (rule 4)."""

    started_at: float
    """When the handler accepted the case (受理), epoch seconds."""
    promised_days: int
    """The matter's promised time limit (承诺时限), in working days; at least 1."""
    paused: tuple[tuple[float, float | None], ...] = field(default=())
    """(paused at, resumed at) per supplement request, in order; the last may be open (None)."""

    def __post_init__(self) -> None:
        if not _finite(self.started_at):
            raise DeadlineError("invalid_deadline", "started_at", "is not a finite instant")
        days = self.promised_days
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise DeadlineError("invalid_deadline", "promised_days", f"{days!r} is not >= 1")
        last = self.started_at
        for index, (paused_at, resumed_at) in enumerate(self.paused):
            if not _finite(paused_at) or paused_at < last:
                raise DeadlineError(
                    "invalid_deadline",
                    f"paused[{index}]",
                    "starts before the clock started or before the previous pause ended",
                )
            if resumed_at is None:
                if index != len(self.paused) - 1:
                    raise DeadlineError(
                        "invalid_deadline", f"paused[{index}]", "only the last pause may be open"
                    )
                break
            if not _finite(resumed_at) or resumed_at < paused_at:
                raise DeadlineError("invalid_deadline", f"paused[{index}]", "ends before it starts")
            last = resumed_at

    @property
    def is_paused(self) -> bool:
        """Whether a supplement request is open, so the clock is stopped."""
        return bool(self.paused) and self.paused[-1][1] is None

    def pause(self, at: float) -> Deadline:
        """The clock stopped at ``at`` (a supplement request); refused while already paused."""
        if self.is_paused:
            raise DeadlineError("already_paused", "paused", "the clock is already paused")
        return replace(self, paused=(*self.paused, (max(at, self._last_instant()), None)))

    def resume(self, at: float) -> Deadline:
        """The clock running again from ``at`` (the supplement); refused while running."""
        if not self.is_paused:
            raise DeadlineError("not_paused", "paused", "the clock is running, not paused")
        paused_at = self.paused[-1][0]
        return replace(self, paused=(*self.paused[:-1], (paused_at, max(at, paused_at))))

    def due_at(self, calendar: WorkingCalendar) -> float | None:
        """When the limit is reached, or None while paused with days remaining (rule 5)."""
        for count, end in enumerate(self._counted_day_ends(calendar), start=1):
            if count == self.promised_days:
                return end
        return None

    def overdue(self, calendar: WorkingCalendar, now: float) -> bool:
        """Whether the due time has come by ``now``; the caller excludes concluded cases."""
        due = self.due_at(calendar)
        return due is not None and now >= due

    def remaining_working_days(self, calendar: WorkingCalendar, now: float) -> int:
        """Counted days still to run at ``now``: 0 at the due time, negative once overdue."""
        used = 0
        for end in self._counted_day_ends(calendar):
            if end > now:
                break
            used += 1
        return self.promised_days - used

    def _last_instant(self) -> float:
        if not self.paused:
            return self.started_at
        paused_at, resumed_at = self.paused[-1]
        return paused_at if resumed_at is None else resumed_at

    def _runs(self) -> list[tuple[float, float]]:
        """The spans the clock ran, as (from, to) instants; ``to`` is inf while it still runs."""
        runs: list[tuple[float, float]] = []
        start = self.started_at
        for paused_at, resumed_at in self.paused:
            runs.append((start, paused_at))
            if resumed_at is None:
                return runs
            start = resumed_at
        runs.append((start, math.inf))
        return runs

    def _counted_day_ends(self, calendar: WorkingCalendar) -> Iterator[float]:
        """The end of each day that counts (rule 3), in order; stops at an open pause."""
        runs = self._runs()
        index = 0
        day = calendar.day_of(self.started_at)
        while True:
            day += _ONE_DAY
            end = calendar.end_of_day(day)
            while index < len(runs) and runs[index][1] < end:
                index += 1
            if index == len(runs):
                return
            run_from, _ = runs[index]
            # Rule 4: a day counts when the clock runs at its end, i.e. into its last instant.
            if run_from < end and calendar.is_working_day(day):
                yield end


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
