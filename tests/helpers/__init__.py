"""Code shared by the tests: synthetic datasets, trained fixtures, fake servers, answer corpora.

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject.toml), so tests import ``helpers.x``."""
