import pytest

from chute.core.routing import Route, format_of, is_ignored, sanitize, table_for


@pytest.mark.parametrize(
    ("rel", "table"),
    [
        ("events_2026-11-28.csv", "events"),
        ("orders-0001.csv.gz", "orders"),
        ("flights.csv", "flights"),
        ("Sales Report.csv.zst", "sales_report"),
        ("2026-11-28.csv", "t_2026_11_28"),
        ("metrics.20261128.csv", "metrics"),
        ("clicks_2026_11_28T10-00.csv", "clicks"),
        ("web/x/y/anything.csv", "web"),
        ("Web-Logs/a.csv", "web_logs"),
        ("9lives/a.csv", "t_9lives"),
        ("données.csv", "donn_es"),
    ],
)
def test_table_names_follow_design(rel: str, table: str) -> None:
    assert table_for(rel) == table


def test_routes_override_default() -> None:
    routes = (Route(glob="incoming/*.csv", table="Raw Events"),)
    assert table_for("incoming/a.csv", routes) == "raw_events"
    assert table_for("other/a.csv", routes) == "other"


@pytest.mark.parametrize(
    "rel",
    [".hidden.csv", "_private.csv", "a.csv.tmp", "a.part", "x.crdownload", ".a.csv.swp", "~lock.csv",
     "_quarantine/a.csv", "_archive/b.csv", "sub/.git/config", "sub/_tmp/a.csv"],
)
def test_ignored(rel: str) -> None:
    assert is_ignored(rel)


@pytest.mark.parametrize("rel", ["a.csv", "sub/a.csv.gz", "x_y.csv"])
def test_not_ignored(rel: str) -> None:
    assert not is_ignored(rel)


def test_formats() -> None:
    assert format_of("a.csv.gz") == ("csv", "gzip")
    assert format_of("a.CSV.ZST") == ("csv", "zstd")
    assert format_of("a.csv") == ("csv", None)
    assert format_of("a.bin") == (None, None)


def test_sanitize_never_empty_and_safe() -> None:
    assert sanitize("") == "t_"
    assert sanitize("`; DROP TABLE x; --") == "___drop_table_x____"
