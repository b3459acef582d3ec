"""core/wallclock.py: which zone a column's instants are read in, and naive values made instants
there, nested ones included (the end-to-end cases in Paris are in test_naive_timestamps.py)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import polars as pl
import pytest

from chute.core.wallclock import RULES_END, as_instants, column_zone, has_naive, known_zone, latest_year, unplaceable


@pytest.mark.parametrize(("kind", "server", "zone"), [
    ("DateTime64(6)", "Europe/Paris", "Europe/Paris"),
    ("Nullable(DateTime64(6, 'UTC'))", "Europe/Paris", None),
    ("DateTime('Asia/Tokyo')", "UTC", "Asia/Tokyo"),
    ("Array(Nullable(DateTime64(3)))", "America/New_York", "America/New_York"),
    ("Date32", "Etc/UTC", None),
])
def test_a_declared_zone_wins_over_the_servers_and_utc_needs_nothing(kind: str, server: str, zone: str | None) -> None:
    assert column_zone(kind, server) == zone


def _shift(series: pl.Series, zone: str = "Europe/Paris") -> list:
    return pl.DataFrame([series]).select(as_instants(pl.col(series.name), series.dtype, zone).alias("t"))["t"].to_list()


def test_each_wall_clock_becomes_the_instant_it_names_and_nulls_stay() -> None:
    walls = [dt.datetime(2026, 7, 1, 23, 30), dt.datetime(2026, 1, 15), dt.datetime(1900, 1, 1),
             dt.datetime(2026, 10, 25, 2, 30), dt.datetime(2026, 3, 29, 2, 30), None]
    assert _shift(pl.Series("t", walls)) == [
        dt.datetime(2026, 7, 1, 21, 30), dt.datetime(2026, 1, 14, 23), dt.datetime(1899, 12, 31, 23, 50, 39),
        dt.datetime(2026, 10, 25, 0, 30),  # the repeated hour: its first instant, as ClickHouse reads it
        dt.datetime(2026, 3, 29, 0, 30),  # the skipped hour: with the offset after the change, as ClickHouse
        None]


def test_timestamps_inside_lists_arrays_and_structs_move_and_their_nulls_stay() -> None:
    noon = dt.datetime(2026, 7, 1, 12)
    assert _shift(pl.Series("t", [[noon, None], None, []])) == [[dt.datetime(2026, 7, 1, 10), None], None, []]
    fixed = pl.Series("t", [[noon, noon]], dtype=pl.Array(pl.Datetime("us"), 2))
    assert _shift(fixed) == [[dt.datetime(2026, 7, 1, 10)] * 2]
    assert _shift(pl.Series("t", [{"a": noon, "b": 1}, None, {"a": None, "b": 2}])) == [
        {"a": dt.datetime(2026, 7, 1, 10), "b": 1}, None, {"a": None, "b": 2}]


def test_only_zone_less_timestamps_are_touched() -> None:
    aware = pl.Series("t", [dt.datetime(2026, 7, 1, 12)]).dt.replace_time_zone("UTC")
    assert not has_naive(aware.dtype) and has_naive(pl.List(pl.Datetime("ms")))
    assert _shift(aware) == aware.to_list()


def test_nanoseconds_keep_their_digits_and_every_unit_its_type() -> None:
    """The shift past a skipped hour was a microsecond duration: every ns column came back in µs,
    its last three digits gone (review of 5467b8f)."""
    walls, moved = ["2026-07-01 23:30:00.123456789", "2026-03-29 02:30:00.987654321"], ["21:30:00.", "00:30:00."]
    for unit, digits in (("ms", 3), ("us", 6), ("ns", 9)):
        naive = pl.Series("t", [*walls, None]).str.to_datetime(time_unit=unit)
        out = pl.DataFrame([naive]).select(as_instants(pl.col("t"), naive.dtype, "Europe/Paris"))["t"]
        assert out.dtype == naive.dtype
        assert out.dt.to_string("%Y-%m-%d %H:%M:%S%.f").to_list() == [
            w[:11] + m + w[20:20 + digits] for w, m in zip(walls, moved, strict=True)] + [None]


def test_timestamps_in_map_values_move_too() -> None:
    noon = dt.datetime(2026, 7, 1, 12)
    maps = pl.Series("t", [{"a": noon, "b": None}, {}, None], dtype=pl.Map(pl.String, pl.Datetime("us")))
    assert has_naive(maps.dtype)
    out = pl.DataFrame([maps]).select(as_instants(pl.col("t"), maps.dtype, "Europe/Paris"))["t"]
    assert out.dtype == maps.dtype
    assert out.to_list() == [{"a": dt.datetime(2026, 7, 1, 10), "b": None}, {}, None]


@pytest.mark.parametrize(("wall", "zone"), [
    ("2262-04-11 23:47:16.854775807", "America/New_York"),  # pandas' Timestamp.max, a common "no end" mark
    ("1677-09-21 00:12:43.145224192", "Asia/Kolkata"),  # Timestamp.min
    ("2011-12-30 12:00:00", "Pacific/Apia"),  # a day that zone skipped (across the date line)
])
def test_a_wall_clock_with_no_instant_the_unit_can_hold_is_named_not_wrapped_or_emptied(wall: str, zone: str) -> None:
    """Before: the ns count wrapped silently (2262 landed as 1677 and back), the skipped day became NULL."""
    walls = pl.Series("t", [wall, "2026-07-01 12:00:00", None]).str.to_datetime(time_unit="ns")
    frame = pl.DataFrame([walls])
    assert frame.select(unplaceable(pl.col("t"), walls.dtype, zone))["t"].to_list() == [True, False, False]
    nested = pl.DataFrame([pl.Series("t", [walls.gather([1, 0]), walls.gather([1]), None])])
    assert nested.select(unplaceable(pl.col("t"), nested["t"].dtype, zone))["t"].to_list() == [True, False, False]
    fixed = nested.select(pl.col("t").list.concat(pl.col("t")).list.head(2).cast(pl.Array(walls.dtype, 2)))
    assert fixed.select(unplaceable(pl.col("t"), fixed["t"].dtype, zone))["t"].to_list() == [True, False, False]


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
                                  "America/Santiago"])
def test_after_2099_the_zone_rule_still_applies_as_clickhouse_applies_it(zone: str) -> None:
    """polars' rules stop at 2099 (every later wall clock got the offset of December 2099): a summer
    hour in Paris landed an hour late, a Sydney midnight in July on the day before. zoneinfo keeps
    the rule, as ClickHouse does (checked against chDB for 8 zones over 2026-2299 in the review)."""
    import numpy as np

    start, end = dt.datetime(2026, 1, 1), dt.datetime(2299, 12, 31)
    minutes = np.random.default_rng(9).integers(0, int((end - start).total_seconds()) // 60, 3000)
    walls = [start + dt.timedelta(minutes=int(m)) for m in minutes]
    rule = zoneinfo.ZoneInfo(zone)
    # (a wall time that zone skips is left out: zoneinfo and ClickHouse place it differently)
    walls = [w for w in walls if w.replace(tzinfo=rule).astimezone(dt.UTC).astimezone(rule).replace(tzinfo=None) == w]
    series = pl.Series("t", walls)
    far = (latest_year(series) or 0) >= RULES_END
    got = pl.DataFrame([series]).select(as_instants(pl.col("t"), series.dtype, zone, far))["t"].to_list()
    want = [w.replace(tzinfo=rule).astimezone(dt.UTC).replace(tzinfo=None) for w in walls]
    assert far and [(w, g) for w, g, x in zip(walls, got, want, strict=True) if g != x] == []


def test_latest_year_looks_inside_lists_maps_and_structs() -> None:
    late = dt.datetime(2150, 7, 1)
    assert latest_year(pl.Series([[dt.datetime(2026, 1, 1)], [late]])) == 2150
    assert latest_year(pl.Series([{"a": late}], dtype=pl.Map(pl.String, pl.Datetime("us")))) == 2150
    assert latest_year(pl.Series([{"a": late, "b": 1}])) == 2150
    assert latest_year(pl.Series([None], dtype=pl.Datetime("us"))) is None
    assert latest_year(pl.Series([late]).dt.replace_time_zone("UTC")) is None


def test_a_zone_named_the_posix_way_is_the_same_zone_and_an_unknown_one_is_none() -> None:
    assert known_zone("posix/Europe/Paris") == "Europe/Paris" and known_zone("Asia/Kolkata") == "Asia/Kolkata"
    assert known_zone("Mars/Olympus_Mons") is None
    assert column_zone("DateTime64(6)", "Europe/Paris") == "Europe/Paris"
