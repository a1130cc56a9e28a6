"""A trained stage-one run on the synthetic city, shared by the predictor, export and app tests.

Registered for every test by ``tests/conftest.py``: ``trained_run`` trains once per test session
(24 steps on ``synthetic_dataset``); ``small_city`` builds a small embedded Helsinki dataset once.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trained_run(synthetic_dataset, tmp_path_factory):
    from addressclip import train as train_mod
    run = tmp_path_factory.mktemp("stage1") / "addressclip"
    rc = train_mod.main(["--data", str(synthetic_dataset), "--out", str(run), "--epochs", "4",
                         "--workers", "0", "--batch-size", "32", "--progress", "false", "--log-every", "6"])
    assert rc == 0
    return run


@pytest.fixture(scope="session")
def small_city(tmp_path_factory):
    """The embedded Helsinki city with few locations and views, at its default 128 px (the model
    resizes to 64 px, so preprocessing parity is exercised); about 10 s to build."""
    from data_gen.build import BuildConfig, build
    out = tmp_path_factory.mktemp("helsinki") / "data"
    return build(BuildConfig(out=out, seed=3, spacing_m=40.0, headings=2, image_size=128, workers=1))
