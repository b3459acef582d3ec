"""A test must not leave file descriptors open: a pytest worker runs hundreds of tests, and one
that reached descriptor 1,024 broke ``select()`` in a later test (closing note of session 4).

``fd_guard`` (autouse, imported by tests/conftest.py) compares this process's descriptors before
a test and after its teardown, and fails the test when more than ``LIMIT`` stay open. Descriptors
opened while a session- or module-scoped fixture was set up during the test (``http_target``
asked for by ``any_target``, say) belong to that fixture, not to the test, and are not counted.

chDB keeps three descriptors open per thread of its pool (/proc/self/task/N/{stat,schedstat,io},
for query statistics); its pool grows by itself to a steady size (~40-120 threads here), so those
are not counted per test. Their total is capped instead (``THREAD_FDS``): when the last handle on
an engine closes, chDB shuts it down, and starting it again leaves ~5 threads (15 descriptors)
behind, so a worker whose tests restart the engine again and again passes the cap; that is how a
worker once reached descriptor 1,024 (tests/conftest.py's ``embedded_path`` keeps one handle open).
``CHUTE_FD_GUARD=off`` turns the check off (``=report`` prints instead of failing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# More than this many descriptors left open by one test fails it. Background threads of a
# wider-scoped fixture (a module's daemon) may hold a file or two at the moment of either look.
LIMIT = 8
# chDB thread descriptors a process may hold at most: 200 threads, half of select()'s 1,024.
THREAD_FDS = 600
MODE = os.environ.get("CHUTE_FD_GUARD", "fail")

_wider: set[tuple[int, str]] = set()  # (fd, target) opened while a wider-scoped fixture was set up


def open_fds() -> dict[int, str]:
    """This process's descriptors and what each points to."""
    out: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile (or the listing's own descriptor)
            continue
    return out


def is_thread_stat(target: str) -> bool:
    """A descriptor chDB keeps for one of its threads' statistics."""
    return target.startswith("/proc/") and "/task/" in target


def program_files() -> set[str]:
    """The executable and the shared objects mapped into this process."""
    found = {os.path.realpath("/proc/self/exe")}
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split(maxsplit=5)[5:]
            if path and path[0].startswith("/"):
                found.add(path[0].strip())
    return found


def is_part_in_progress(target: str) -> bool:
    """A file of a data part chDB is still writing in the background (``tmp_merge_*``,
    ``tmp_mut_*``, ``tmp_insert_*`` in its store): a merge that began during the test holds a
    dozen until it ends (seen failing CI under load), then closes them itself."""
    return "/store/" in target and "/tmp_" in target


def is_symbol_file(target: str, programs: set[str]) -> bool:
    """A file chDB's symboliser opened: the first ClickHouse error with a stack trace in a process
    opens every loaded object and its debug file once, and keeps them (~100-160 descriptors)."""
    return target.startswith("/usr/lib/debug/") or target in programs


def leaked(before: dict[int, str], after: dict[int, str], wider: set[tuple[int, str]]) -> dict[int, str]:
    """Descriptors open after the test that were not before (or now point elsewhere), less the
    ones a wider-scoped fixture opened meanwhile, chDB's per-thread ones and its symbol files."""
    new = {fd: t for fd, t in after.items()
           if before.get(fd) != t and (fd, t) not in wider and not is_thread_stat(t) and not is_part_in_progress(t)}
    if len(new) <= LIMIT:
        return new
    programs = program_files()
    return {fd: t for fd, t in new.items() if not is_symbol_file(t, programs)}


def verdict(new: dict[int, str], after: dict[int, str], limit: int = LIMIT,
            thread_fds: int = THREAD_FDS) -> str | None:
    """The failure message for ``new`` descriptors and the process's ``after``, or None."""
    if len(new) > limit:
        shown = "\n".join(f"  {fd} -> {t}" for fd, t in sorted(new.items())[:40])
        return f"{len(new)} file descriptors left open by this test (at most {limit} allowed):\n{shown}"
    threads = sum(map(is_thread_stat, after.values()))
    if threads > thread_fds:
        return (f"this process holds {threads} descriptors of chDB threads (at most {thread_fds}): an engine "
                "started again and again leaves threads behind (keep one handle open: tests/conftest.py)")
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> Iterator[None]:
    if fixturedef.scope == "function" or MODE == "off":
        yield
        return
    before = open_fds()
    yield
    _wider.update((fd, t) for fd, t in open_fds().items() if before.get(fd) != t)


@pytest.fixture(autouse=True)
def fd_guard() -> Iterator[None]:
    """Function-scoped and autouse, so set up before and torn down after the test's own fixtures."""
    if MODE == "off":
        yield
        return
    _wider.clear()
    before = open_fds()
    yield
    after = open_fds()
    message = verdict(leaked(before, after, _wider), after)
    if message is None:
        return
    if MODE == "report":
        print(f"\n[fd_guard] {message}")
        return
    pytest.fail(message, pytrace=False)
