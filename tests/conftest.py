"""Fixtures every test folder may use: the real embedded Helsinki extract (read once per session),
the synthetic dataset and the trained stage-one run (``tests/helpers``).

Folders by area: ``data/`` (data_gen), ``addressclip/`` (stage one), ``llava/`` (stage two and
serving), ``qa/`` (the QA evaluation), ``pipeline/`` (the main job), ``app/`` (the web app),
``reliability/`` (bad inputs, interrupted runs, flaky servers across stages). A folder's own fixtures
are in its ``conftest.py``.
"""

from __future__ import annotations

import pytest

from data_gen.osm import embedded_extract_path, read_city
from data_gen.partition import initial_pieces

pytest_plugins = ("helpers.synthetic", "helpers.stage_one")


@pytest.fixture(scope="session")
def helsinki():
    return read_city(embedded_extract_path())


@pytest.fixture(scope="session")
def helsinki_pieces(helsinki):
    return initial_pieces(helsinki)
