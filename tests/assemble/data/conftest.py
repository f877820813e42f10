import pytest


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("STACKFORM_CACHE", str(tmp_path / "cache"))
