"""Short, fixed-width renderings of sizes, ages, counts and states for 80-column tables."""

from __future__ import annotations

import functools
import re
import unicodedata

import humanize
from rich.text import Text

from chute.core.states import State

# Named ANSI colours: they map onto any 16-colour palette; bold and underline mark the states
# that need an operator, so they stand out without colour too (NO_COLOR, a monochrome tmux).
STATE_STYLE: dict[str, str] = {
    State.SEEN: "bright_black",
    State.SETTLING: "bright_black",
    State.QUEUED: "default",
    State.LOADING: "bold cyan",
    State.LOADED: "green",
    State.DUPLICATE: "blue",
    State.HELD: "bold underline yellow",
    State.FAILED: "bold underline red",
    State.QUARANTINED: "bold underline magenta",
    State.PURGED: "bright_black",
}

_UNITS = {"second": "s", "minute": "m", "hour": "h", "day": "d", "month": "mo", "year": "y"}
_DELTA = re.compile(r"^(an?|\d+) (second|minute|hour|day|month|year)s?$")
BAR = "▏▎▍▌▋▊▉█"
SPARK = "▁▂▃▄▅▆▇█"


def state_text(state: str) -> Text:
    return Text(str(state), style=STATE_STYLE.get(state, ""))


def age(seconds: float) -> str:
    """humanize's natural delta, abbreviated: '5s', '2m', '3h', 'now'."""
    return _age(int(max(0.0, seconds)))


@functools.lru_cache(maxsize=8192)
def _age(seconds: int) -> str:
    # Cached: the Files pane asks for 500 ages a second, and humanize takes some 20 µs each.
    words = humanize.naturaldelta(seconds)
    m = _DELTA.match(words)
    if not m:
        return "now"
    count = "1" if m.group(1) in ("a", "an") else m.group(1)
    return count + _UNITS[m.group(2)]


def ago(seconds: float) -> str:
    short = age(seconds)
    return short if short == "now" else f"{short} ago"


def size(n: int | None) -> str:
    return "" if n is None else humanize.naturalsize(n, format="%.1f").replace(" Bytes", " B")


def count(n: int | None) -> str:
    """Thousands separators while they fit in 9 characters, then k/M/G."""
    if n is None:
        return ""
    # f"{n:,}" is humanize.intcomma's output (English separators) at a hundredth of its cost.
    return f"{n:,}" if n < 10_000_000 else humanize.metric(n, precision=3).replace(" ", "")


def plural(n: int | None, word: str) -> str:
    """'1 file', '2 files', '12,000 rows'."""
    return f"{count(n or 0)} {word}{'' if n == 1 else 's'}"


def rate(value: float) -> str:
    if value >= 10_000:
        return humanize.metric(value, precision=3).replace(" ", "")
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def progress_bar(done: int, total: int, width: int = 6) -> Text:
    """'▉▉▉▍  62%': an eighth-block bar plus a percentage, in one cell."""
    frac = min(1.0, done / total) if total else 0.0
    eighths = int(frac * width * 8)
    bar = "█" * (eighths // 8) + (BAR[eighths % 8 - 1] if eighths % 8 else "")
    return Text.assemble((f"{bar:<{width}}", "cyan"), f"{frac:4.0%}")


def sparkline(values: list[float], width: int) -> str:
    """Unicode block sparkline of the last ``width`` values, scaled to their max."""
    vals = values[-width:]
    top = max(vals, default=0)
    if top <= 0:
        return SPARK[0] * len(vals)
    return "".join(SPARK[min(7, int(v / top * 7.999))] for v in vals)


def shorten(text: str, width: int) -> str:
    """Fit a path in ``width``: keep its first folder (up to a third) and its end (the file name)."""
    text = escaped(text)  # (a table cell shows "odd" of "odd\nname.csv")
    if len(text) <= width:
        return text
    if width < 8:
        return text[: max(0, width - 1)] + "…"
    # The first folder, with the leading slash of an absolute path or the scheme of a URL.
    scheme, sep, rest = text.partition("://")
    lead, body = (scheme + sep, rest) if sep else ("", text)
    root = "/" if body.startswith("/") else ""
    first = body[len(root):].split("/", 1)[0]
    head = lead + root + first + "/" if "/" in body[len(root):] else lead + root
    head = head if len(head) <= width // 3 else lead[: width // 3]
    return head + "…" + text[-(width - 1 - len(head)):]


def escaped(text: str) -> str:
    """``text`` with its control characters written as escapes (a file name may hold a newline, a
    tab or an ESC: printed, they break a line the layout counts on, or reach the terminal)."""
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text)


def one_line(text: str | None, width: int = 200) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
