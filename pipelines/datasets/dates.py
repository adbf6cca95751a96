"""Synthetic date normalisation: human-readable date -> ISO "YYYY-MM-DD" (a tiny seq2seq task).

Inputs come in many English formats, each also lowercased or uppercased at random:

    "3 May 1979", "03 MAY 1979", "May 3, 1979", "march 4th, 1999", "4th of March 1999",
    "tuesday march 4 1999", "Tue 4 Mar 1999", "Thursday, 3 May 1979", "3.5.1979",
    "03.05.1979", "3/5/1979", "04/05/98", "1979-05-03", "1979/05/03"

Conventions (so that every input has exactly one answer):
- Numeric formats are day first (European): "3.5.1979" and "3/5/1979" are 3 May 1979.
- "dd/mm/yy" has a two-digit year with pivot 50: 00-49 -> 2000-2049, 50-99 -> 1950-1999.
  It is only used for dates in 1950-2049; other dates get a four-digit format instead.
- Weekday and month names are English and come from fixed tables (never the locale);
  a weekday always matches the date (`datetime.date.weekday`).

Everything is drawn from `numpy.random.default_rng(seed)`, so a seed gives the same pairs
on every machine.
"""

from __future__ import annotations

import datetime
import re

import numpy as np

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PIVOT = 50  # two-digit years below it are 20xx, the others 19xx


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _fields(date: datetime.date) -> dict:
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    return {"d": date.day, "dd": f"{date.day:02d}", "m": date.month, "mm": f"{date.month:02d}",
            "yyyy": f"{date.year:04d}", "yy": f"{date.year % 100:02d}", "Month": month, "Mon": month[:3],
            "Weekday": weekday, "Wkd": weekday[:3], "ord": _ordinal(date.day)}


#: (format, uses a two-digit year). Names are filled in Title case, then the casing of the
#: whole string is varied.
FORMATS = (
    ("{d} {Month} {yyyy}", False),
    ("{dd} {Month} {yyyy}", False),
    ("{Month} {d}, {yyyy}", False),
    ("{Month} {ord}, {yyyy}", False),
    ("{ord} of {Month} {yyyy}", False),
    ("{Mon} {d} {yyyy}", False),
    ("{Weekday} {Month} {d} {yyyy}", False),
    ("{Weekday}, {d} {Month} {yyyy}", False),
    ("{Wkd} {d} {Mon} {yyyy}", False),
    ("{d}.{m}.{yyyy}", False),
    ("{dd}.{mm}.{yyyy}", False),
    ("{d}/{m}/{yyyy}", False),
    ("{dd}/{mm}/{yy}", True),
    ("{yyyy}-{mm}-{dd}", False),
    ("{yyyy}/{mm}/{dd}", False),
)
_FOUR_DIGIT = tuple(index for index, (_, two_digit) in enumerate(FORMATS) if not two_digit)


def render_date(date: datetime.date, rng: np.random.Generator) -> str:
    """One human-readable form of `date`: a random format and casing (title/lower/upper)."""
    index = int(rng.integers(len(FORMATS)))
    if FORMATS[index][1] and not 1900 + PIVOT <= date.year < 2000 + PIVOT:
        index = _FOUR_DIGIT[int(rng.integers(len(_FOUR_DIGIT)))]
    text = FORMATS[index][0].format(**_fields(date))
    casing = rng.random()
    return text.lower() if casing < 0.3 else text.upper() if casing < 0.45 else text


def _day_range(start_year: int, end_year: int) -> tuple[int, int]:
    if not 1 <= start_year <= end_year <= 9999:
        raise ValueError(f"Expected 1 <= start_year <= end_year <= 9999; received "
                         f"start_year={start_year}, end_year={end_year}.")
    return datetime.date(start_year, 1, 1).toordinal(), datetime.date(end_year, 12, 31).toordinal()


def _pairs(ordinals, rng: np.random.Generator) -> list[tuple[str, str]]:
    dates = [datetime.date.fromordinal(int(ordinal)) for ordinal in ordinals]
    return [(render_date(date, rng), date.isoformat()) for date in dates]


def generate_dates(count: int, seed: int, start_year: int = 1900, end_year: int = 2100) -> list[tuple[str, str]]:
    """`count` (text, ISO) pairs for days drawn uniformly (with replacement) from the range."""
    first, last = _day_range(start_year, end_year)
    rng = np.random.default_rng(seed)
    return _pairs(rng.integers(first, last + 1, size=count), rng)


def dates_splits(train: int = 20000, val: int = 1000, test: int = 2000, seed: int = 0,
                 start_year: int = 1900, end_year: int = 2100) -> dict[str, list[tuple[str, str]]]:
    """{"train", "val", "test"} pair lists whose target dates are all distinct.

    The days of the range are shuffled once (by `seed`) and dealt out: the first `test`
    days to test, the next `val` to val, the next `train` to train. So no ISO date occurs
    twice anywhere, and test measures generalisation to unseen dates, not memorisation.
    1900-2100 has 73,414 days; asking for more raises ValueError.
    """
    first, last = _day_range(start_year, end_year)
    available = last - first + 1
    if train + val + test > available:
        raise ValueError(f"{start_year}-{end_year} has {available} days, fewer than train+val+test="
                         f"{train + val + test}; lower the counts or widen the year range.")
    days = first + np.random.default_rng(seed).permutation(available)
    bounds = {"train": (test + val, test + val + train), "val": (test, test + val), "test": (0, test)}
    return {name: _pairs(days[start:stop], np.random.default_rng([seed, index]))
            for index, (name, (start, stop)) in enumerate(bounds.items())}


_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (\d takes any script's)


def is_iso_date(text: str) -> bool:
    """True when `text` is exactly "YYYY-MM-DD" and names a real day ("2020-02-31" and
    "0000-01-01" are not; nor is anything with other characters around it)."""
    if not _ISO.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True
