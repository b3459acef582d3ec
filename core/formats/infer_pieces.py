"""The whole-file inference (core/formats/infer.py) gathered a piece of text at a time, each piece
typed as it comes, so that a file's text is never held whole (issue 12: peak RSS, one parse).

Each piece gets the in-memory first pass (:func:`infer._quick_pass`), whose counts add up across
pieces, and its number and bool columns are cast to their candidate's type at once: an integer
takes 8 bytes instead of a 16-byte string view (more, for text past 12 bytes), a bool one bit.
The casts are the ones :func:`infer.whole_frame` and :func:`infer.to_wire` make, on the same
values, so the batches hold what they held before. Date and text columns stay text (ClickHouse
parses dates itself). A cast column's text is gone, so such a column cannot widen later: a piece
that disagrees with a cast candidate raises :class:`Disagrees` and the caller parses the file
whole, as before (a column whose sample is all integers and that holds a decimal further on).
Columns kept as text widen as in the whole-file pass, over the pieces gathered.
"""

from __future__ import annotations

import polars as pl

from chute.core.formats.infer import (
    _CAST_FIRST,
    FileFacts,
    Verdict,
    _cast,
    _Pass,
    _quick_pass,
    conclude,
    wire_expr,
)

CAST_KINDS = ("int", "float", "bool")  # cast piece by piece; other kinds travel as text
_SUMS = ("\x00rows", "\x00empty", "null", "miss", "both", "bad", "tok")


class Disagrees(Exception):
    """A value further on is not its cast column's candidate kind: infer from the whole text."""


class PieceInference:
    """Add pieces in file order (:meth:`add` returns each one typed), then :meth:`facts`."""

    def __init__(self, candidates: dict[str, str | None], tokens: tuple[str, ...]) -> None:
        self.candidates = candidates
        self.tokens = tokens
        self.cast = {c: k for c, k in candidates.items() if k in CAST_KINDS}
        self.stats: dict = {}

    def add(self, piece: pl.DataFrame) -> pl.DataFrame:
        ints = {c: k for c, k in self.cast.items() if k in _CAST_FIRST}
        work = piece.with_columns(_cast(k, pl.col(c)).alias(f"cast\x00{c}") for c, k in ints.items())
        stats = _quick_pass(_Pass(work.lazy(), False), self.candidates, self.tokens, casts=True)
        failed = [c for c in self.cast if stats[f"bad\x00{c}"]]
        if failed:
            raise Disagrees(f"column {failed[0]!r} is not {self.cast[failed[0]]} further on")
        self._merge(stats)
        # The piece's own tokens seen: the tokens a column holds anywhere are the union of these.
        verdicts = {c: Verdict(k, tokens=list(stats.get(f"seen\x00{c}") or [])) for c, k in self.cast.items()}
        exprs = []
        for c in piece.columns:
            v = verdicts.get(c)
            if v is None:
                exprs.append(pl.col(c))
            elif c in ints:  # (the cast the pass made, as whole_frame keeps it)
                cast = pl.col(f"cast\x00{c}")
                exprs.append((pl.when(pl.col(c).is_in(v.tokens)).then(None).otherwise(cast) if v.tokens
                              else cast).alias(c))
            else:
                wire = wire_expr(c, v)
                assert wire is not None  # (a number or bool always casts)
                exprs.append(wire)
        return work.select(exprs)

    def _merge(self, stats: dict) -> None:
        for key, value in stats.items():
            kind = key.split("\x00", 1)[0] if not key.startswith("\x00") else key
            have = self.stats.get(key)
            if kind in _SUMS or key in _SUMS:
                self.stats[key] = (have or 0) + (value or 0)
            elif kind == "seen":
                self.stats[key] = sorted(set(have or []) | set(value or []))
            elif kind == "fine":
                self.stats[key] = bool(have) or bool(value)
            else:
                raise AssertionError(f"no rule to add up {key!r}")

    def widens(self) -> bool:
        """Whether a column kept as text fails its candidate (it widens over its whole text)."""
        return any(self.stats.get(f"bad\x00{c}") for c, k in self.candidates.items() if k != "text")

    def facts(self, frame: pl.DataFrame) -> FileFacts:
        """The verdicts, as :func:`infer.whole_frame` finds them; ``frame``: the typed pieces
        gathered (text columns widen over it)."""
        if not self.stats:  # no pieces: no rows
            self._merge(_quick_pass(_Pass(frame.lazy(), False), self.candidates, self.tokens, casts=False))
        return conclude(_Pass(frame.lazy(), False), dict(self.stats), self.candidates, self.tokens)
