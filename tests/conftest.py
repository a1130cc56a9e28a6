"""Shared fixtures: the real embedded Helsinki extract, read once per test session."""

from __future__ import annotations

import pytest

from data_gen.osm import embedded_extract_path, read_city
from data_gen.partition import initial_pieces


@pytest.fixture(scope="session")
def helsinki():
    return read_city(embedded_extract_path())


@pytest.fixture(scope="session")
def helsinki_pieces(helsinki):
    return initial_pieces(helsinki)
