"""Fixtures of the QA-evaluation tests: a gazetteer file and the embedded city built small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.qa import PITTSBURGH


@pytest.fixture(scope="session")
def pittsburgh_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gaz") / "pittsburgh.json"
    path.write_text(json.dumps(PITTSBURGH), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """The embedded Helsinki city built small (about 290 images, 32 px)."""
    from data_gen.build import BuildConfig, build

    out = tmp_path_factory.mktemp("qa_data") / "data"
    return build(BuildConfig(out=out, seed=0, spacing_m=80.0, headings=1, image_size=32, workers=1))
