import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.credits import credits, format_cents, format_credits, format_credits_short


@pytest.mark.parametrize(
    ("milli", "text"),
    [
        (0, "0"),
        (700, "0.7"),
        (1_500, "1.5"),
        (80_000_000, "80,000"),
        (1_234_567, "1,234.567"),
        (-2_100, "-2.1"),
        (5, "0.005"),
    ],
)
def test_format_credits(milli, text):
    assert format_credits(milli) == text


def test_format_credits_signed_and_rounded():
    assert format_credits(1_500, signed=True) == "+1.5"
    assert format_credits(-1_500, signed=True) == "-1.5"
    assert format_credits(0, signed=True) == "0"
    assert format_credits(1_250, places=1) == "1.3"  # half up


@pytest.mark.parametrize(
    ("milli", "text"),
    [(10_000_000, "10K"), (80_000_000, "80K"), (1_000_000_000, "1M"), (1_500_000, "1,500")],
)
def test_format_credits_short(milli, text):
    assert format_credits_short(milli) == text


def test_format_cents():
    assert (format_cents(2_900), format_cents(950), format_cents(10_800)) == ("$29", "$9.50", "$108")


def test_credits_parses_exactly_and_refuses_what_it_cannot_hold():
    assert credits("0.7") == 700
    assert credits("1,500") == 1_500_000
    assert credits(3) == 3_000
    for bad in ("0.0001", "abc", "NaN", "Infinity", ""):
        with pytest.raises(ValueError):
            credits(bad)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_formatting_round_trips_every_millicredit_amount(milli):
    assert credits(format_credits(milli)) == milli


def _format_by_decimal(milli: int, signed: bool, places: int) -> str:
    """The reference: credits as Decimal, quantized half up (the definition format_credits must match)."""
    from decimal import ROUND_HALF_UP, Decimal

    value = (Decimal(milli) / 1000).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{abs(value):,f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    if value < 0:
        return f"-{text}"
    return f"+{text}" if signed and value > 0 else text


@given(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.booleans(),
    st.integers(min_value=0, max_value=3),
)
def test_format_credits_agrees_with_decimal_rounding(milli, signed, places):
    assert format_credits(milli, signed=signed, places=places) == _format_by_decimal(milli, signed, places)


def test_ungrouped_credits_read_back_exactly():
    import random

    rng = random.Random(11)
    samples = [0, 1, -1, 700, -1_500_000, 999_999_999_999, *(rng.randint(-(10**15), 10**15) for _ in range(20_000))]
    for milli in samples:
        text = format_credits(milli, grouped=False)
        assert "," not in text and credits(text) == milli, milli
        assert format_credits(milli, grouped=False, signed=True).lstrip("+") == text
    assert format_credits(1_234_567_800, grouped=False) == "1234567.8"
    assert format_credits(-80_000_000, signed=True, grouped=False) == "-80000"


@pytest.mark.parametrize(
    ("amount", "total", "shown"),
    [
        (0, 0, "0%"),
        (0, 500, "0%"),
        (1, 1_000_000, "<1%"),  # a millicredit of a thousand credits: used, so never "0%"
        (9_999, 1_000_000, "<1%"),
        (10_000, 1_000_000, "1%"),
        (5, 1_000, "<1%"),  # 0.5 % would round up to 1 %: it is under 1 % all the same
        (571, 1_000, "57%"),
        (575, 1_000, "58%"),  # half up
        (990_000, 1_000_000, "99%"),
        (990_001, 1_000_000, ">99%"),  # all but a sliver: never "100%"
        (1_000, 1_000, "100%"),
    ],
)
def test_a_share_under_1_percent_is_less_than_1_never_0(amount, total, shown):
    from billing.templatetags.billing_format import share_of

    assert share_of(amount, total) == shown


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_the_credits_filter_writes_every_amount_exactly_as_format_credits_does(milli):
    from billing.templatetags.billing_format import credits as credits_filter

    assert credits_filter(milli) == format_credits(milli)
    assert credits(credits_filter(milli)) == milli  # exact: no rounding anywhere a page shows credits
