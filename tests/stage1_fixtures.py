"""A trained stage-one run on the synthetic city, shared by the predictor, export and app tests.

Import the fixture where it is used: ``from stage1_fixtures import trained_run`` (it also pulls in
``synthetic_dataset``). Trains once per test session (24 steps, about 40 s on 2 cores).
"""

from __future__ import annotations

import pytest

from synthetic_ial import synthetic_dataset  # noqa: F401  (fixture used below)


@pytest.fixture(scope="session")
def trained_run(synthetic_dataset, tmp_path_factory):  # noqa: F811
    from addressclip import train as train_mod
    run = tmp_path_factory.mktemp("stage1") / "addressclip"
    rc = train_mod.main(["--data", str(synthetic_dataset), "--out", str(run), "--epochs", "4",
                         "--workers", "0", "--batch-size", "32", "--no-progress", "--log-every", "6"])
    assert rc == 0
    return run
