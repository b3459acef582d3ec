from pathlib import Path

import pytest

from chute.core import config
from chute.core.errors import UsageError


def test_password_in_url_is_refused() -> None:
    with pytest.raises(UsageError, match="CHUTE_CLICKHOUSE_PASSWORD"):
        config.validate_url("http://user:secret@localhost:8123")


@pytest.mark.parametrize("url", ["ftp://x", "chdb://relative/path", "http://", "http://h:notaport"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(UsageError):
        config.validate_url(url)


def test_good_urls() -> None:
    for url in ("chdb:///abs/path", "http://ingest@ch.example:8123", "https://ch:8443"):
        config.validate_url(url)


def test_precedence_file_env_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('batch_rows = 5000\nworkers = 3\ndatabase = "fromfile"\n'
                    '[[routes]]\nglob = "a/*"\ntable = "x"\n')
    monkeypatch.setenv("CHUTE_WORKERS", "4")
    cfg = config.load(toml, {"database": "fromflag"})
    assert cfg.batch_rows == 5000  # file
    assert cfg.workers == 4  # env beats file
    assert cfg.database == "fromflag"  # flag beats both
    assert cfg.routes[0].table == "x"


def test_unknown_key_names_the_key(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("batch_rowz = 1\n")
    with pytest.raises(UsageError, match="batch_rowz"):
        config.load(toml, {})


def test_password_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    monkeypatch.delenv("CHUTE_CLICKHOUSE_PASSWORD", raising=False)
    assert config.Config(password_file=secret).password() == "s3cret"
    monkeypatch.setenv("CHUTE_CLICKHOUSE_PASSWORD", "fromenv")
    assert config.Config(password_file=secret).password() == "fromenv"
