"""chute installs as one `chute` namespace: core/ is `chute.core`, tui/ is `chute.tui`, nothing else at the top."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    dirs = conf["package-dir"]
    on_disk = set()
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            on_disk.add(".".join((name, *rel)))
    assert on_disk - listed == set(), "package folders the wheel would leave out"
    assert all(p.startswith("chute.") for p in listed)


@pytest.mark.slow
def test_wheel_has_only_the_chute_namespace(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("chute-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"chute"}
    assert "chute/tui/chute.tcss" in names
    assert "chute/core/cli.py" in names


def test_installed_chute_imports_outside_the_repo(tmp_path: Path) -> None:
    code = ("import importlib.util as u, chute.core, chute.tui\n"
            "print(u.find_spec('core') is None and u.find_spec('tui') is None)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
