from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from billing.months import period_containing, shift_months

PARIS = ZoneInfo("Europe/Paris")


def at(*args, tz=PARIS):
    return datetime(*args, tzinfo=tz)


def test_the_31st_becomes_the_last_day_of_short_months_without_drifting():
    anchor = at(2027, 1, 31, 9, 30)
    assert [shift_months(anchor, n).date().isoformat() for n in range(4)] == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
    ]


def test_leap_years():
    anchor = at(2028, 1, 30)
    assert shift_months(anchor, 1).date().isoformat() == "2028-02-29"
    assert shift_months(at(2028, 2, 29), 12).date().isoformat() == "2029-02-28"


def test_periods_keep_the_wall_clock_across_daylight_saving():
    anchor = at(2027, 3, 15, 10, 0)  # before the clocks go forward on 28 March
    moved = shift_months(anchor, 1)
    assert (moved.hour, moved.utcoffset().total_seconds()) == (10, 7_200)


def test_period_containing():
    anchor = at(2027, 1, 31, 12, 0)
    assert period_containing(anchor, at(2027, 3, 30, 23, 0)) == (at(2027, 2, 28, 12, 0), at(2027, 3, 31, 12, 0))
    assert period_containing(anchor, at(2027, 3, 31, 12, 0)) == (at(2027, 3, 31, 12, 0), at(2027, 4, 30, 12, 0))
    assert period_containing(anchor, anchor) == (anchor, at(2027, 2, 28, 12, 0))
    with pytest.raises(ValueError):
        period_containing(anchor, at(2027, 1, 1))
