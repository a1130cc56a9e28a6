"""Seeded fuzzing: 100k generated answers through the answer parser, and 10k generated
rows through each annotation reader, with no unhandled exception.

- Parser: every string parses to one of the documented kinds, never ``"error"`` (``parse`` turns
  internal exceptions into that kind, so an ``error`` here is a bug) and the contract holds (names
  come from the gazetteer, refusals name nothing). Strings mix gazetteer names (also misspelt and
  re-cased), glue words, unicode (combining marks, RTL overrides, lone surrogates, CJK, emoji),
  control characters, JSON fragments and deep nesting, and every few hundred a very long string.
- Readers: each generated row is read on its own (one row or entry after a good one), so the
  promise is checked row by row: the row parses, or the reader raises the toolkit's own
  :class:`~ial_core.errors.DataError` whose message names the file and that row / item. The answers
  file reader reports problems instead of raising; there every line is either an answer/error for
  its id or an issue naming the line.

Counts and times are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import json
import random
import string
import time

import pytest

from eval.address_parser import KINDS, AddressParser
from eval.gazetteer import Gazetteer
from helpers.qa import PITTSBURGH
from ial_core.errors import DataError

GAZ = Gazetteer(city=PITTSBURGH["city"],
                streets=PITTSBURGH["streets"] + ["Aleksanterinkatu", "Yrjö-Koskisen katu",
                                                 "Pohjoisesplanadi"],
                districts=PITTSBURGH["districts"] + ["Kluuvi", "Kaartinkaupunki"],
                city_aliases=["Pgh"], street_aliases={"Alexandersgatan": "Aleksanterinkatu"},
                region="Pennsylvania", country="US")
GLUE = ["&", "and", "or", "near", "corner of", "at", "between", "The photo was taken on", "in",
        "not", "isn't", "rather than", "but", "New York's", "Texas", ", CA", "Lahti", "Finland",
        "Alexandersgatan", "? No,", "Oakland, California",
        "I cannot determine", "I'm sorry", "possibly", "Helsinki", "Minneapolis, Minnesota",
        "New York", "PA", "USA", "1.", "2)", "-", "*", "•", "400", "5th", "21st", "St.", "Ave",
        "katu", "tie", "N", "downtown", "DOWNTOWN", "null", "true", "0" * 40, "9" * 400]
JSON_BITS = ['{"street": ', '"district": ', '"city": ', '"address": ', '{', '}', '[', ']', '"',
             ':', ',', '```json', '```', '\\u0000', '\\ud800', 'NaN', '-Infinity', '1e999',
             '{"street": {"street": {"street": ', '[' * 50, ']' * 50]
CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\u200b", "\u200e", "\u202e", "\ufeff", "\u2028",
                                         "\u0301", "\u0338", "\ud800", "\udfff", "\U0010ffff"]
UNICODE = ["é", "ß", "Ä", "ﬁ", "Ⅻ", "５", "的", "東京", "🙂", "👩‍👩‍👧", "ǅ", "İ", "ﬀ", "Ω", "À" * 3]


def _typo(name: str, rng: random.Random) -> str:
    if len(name) < 3:
        return name
    i = rng.randrange(len(name) - 1)
    return rng.choice([name[:i] + name[i + 1:], name[:i] + name[i + 1] + name[i] + name[i + 2:],
                       name[:i] + rng.choice(string.ascii_lowercase) + name[i + 1:]])


def _piece(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.30:
        name = rng.choice(GAZ.streets + GAZ.districts)
        return rng.choice([name, name.upper(), name.lower(), _typo(name, rng), name.replace(" ", "")])
    if r < 0.50:
        return rng.choice(GLUE)
    if r < 0.62:
        return rng.choice(JSON_BITS)
    if r < 0.72:
        return "".join(rng.choice(CONTROL) for _ in range(rng.randint(1, 4)))
    if r < 0.82:
        return rng.choice(UNICODE)
    if r < 0.92:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 15)))
    return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 6)))


def answer(rng: random.Random) -> str:
    """One generated answer; about 1 in 400 is long (10k to 60k characters) or deeply nested."""
    r = rng.random()
    if r < 0.0015:
        return rng.choice(["[", "{\"a\":"]) * rng.randint(1000, 20000)
    if r < 0.0025:
        return " ".join(_piece(rng) for _ in range(rng.randint(2000, 8000)))
    sep = rng.choice([" ", "", ", ", "\n", "\t", " & "])
    return sep.join(_piece(rng) for _ in range(rng.randint(0, 14)))


def _check(parser: AddressParser, text: str) -> str:
    p = parser.parse(text)
    assert p.kind in KINDS and p.kind != "error", (text[:300], p)
    assert p.street is None or p.street in GAZ.street_names
    assert p.cross_street is None or p.cross_street in GAZ.street_names
    assert p.district is None or p.district in GAZ.districts
    if p.kind in ("empty", "refusal", "vague", "other_city"):
        assert p.street is None and p.district is None
    return p.kind


@pytest.mark.slow
def test_parser_survives_100k_generated_answers():
    parser = AddressParser(GAZ)
    rng = random.Random(20240707)
    kinds: dict[str, int] = {}
    chars = 0
    t0 = time.perf_counter()
    for _ in range(100_000):
        text = answer(rng)
        chars += len(text)
        kind = _check(parser, text)
        kinds[kind] = kinds.get(kind, 0) + 1
    seconds = time.perf_counter() - t0
    print(f"\nparser fuzz: 100000 answers ({chars / 1e6:.1f} M characters) in {seconds:.1f} s "
          f"({100_000 / seconds:,.0f}/s): {dict(sorted(kinds.items()))}")
    assert sum(kinds.values()) == 100_000
    assert len(kinds) >= 5                    # the generator reaches most kinds, not just "vague"


def test_parser_fuzz_smoke():
    """The same generator, 2k answers (runs in the fast suite)."""
    parser = AddressParser(GAZ)
    rng = random.Random(7)
    for _ in range(2_000):
        _check(parser, answer(rng))


# ---- annotation rows -------------------------------------------------------------------------------

ROWS = 10_000
NUMBERS = ["60.17", "24.94", "-79.99", "40.44", "0", "90", "-180", "180.0001", "91", "nan", "NaN",
           "inf", "-inf", "1e309", "", " ", "north", "60,17", "0x10", "9" * 400, "1_000", "−5",
           "٣", "60.17\x00", "True", "null", "[1]"]
PATHS = ["a.jpg", "cam/1.jpg", "000/000015_pitch1_yaw1.jpg", "../x.jpg", "a/../../x.jpg",
         "/etc/passwd", "C:\\x.jpg", "\\\\server\\x.jpg", "", " ", ".", "a/", "a\x00.jpg",
         "caf\u00e9.jpg", "\ud800.jpg", "x" * 300, "a//b.jpg", "./a.jpg", "~/a.jpg", "a\nb.jpg"]
TEXTS = ["Forbes Ave & Craig St, Oakland", "East Carson St, South Side Flats",
         "located in Oakland, specifically on a section of Forbes Ave", "a street with shops",
         "", ",", "&, ", " & X, ", "Grant Street", "A" * 2000, "located in", "\ud800", "🙂, 🙂"]


def _field(rng: random.Random, pool: list[str]) -> str:
    value = rng.choice(pool) if rng.random() < 0.85 else _piece(rng)
    return value if rng.random() < 0.9 else value + rng.choice(['"', "'", ",", ";", "\t", "\\"])


def _encode(text: str, rng: random.Random) -> bytes:
    """UTF-8, except that lone surrogates become invalid bytes, and now and then a Latin-1 row."""
    if rng.random() < 0.02:
        return text.encode("latin-1", errors="replace")
    return text.encode("utf-8", errors="surrogatepass")


def _expect_named(path, row_text: str, call) -> bool:
    """Run ``call``: True when it read the row; on DataError the message must name the file and
    (for a row-level error) row 2 / the item. Any other exception fails the test."""
    try:
        call()
        return True
    except DataError as exc:
        message = str(exc)
        assert str(path) in message, (row_text, message)
        assert ", row " in message or ", item " in message, (row_text, message)
        return False


def _gps_row(rng: random.Random) -> str:
    n = rng.choices([4, 3, 2, 5, 0, 1], weights=[70, 12, 6, 6, 3, 3])[0]
    fields = [_field(rng, PATHS)] + [_field(rng, NUMBERS) for _ in range(max(0, n - 1))]
    return ",".join(fields[:n])


@pytest.mark.slow
def test_gps_csv_reader_10k_rows(tmp_path):
    from data_gen.photos import read_gps_csv
    rng = random.Random(11)
    path = tmp_path / "gps.csv"
    ok = 0
    for _ in range(ROWS):
        row = _gps_row(rng)
        path.write_bytes(b"image,lat,lon,heading\nfirst.jpg,60.1,24.9,0\n" + _encode(row, rng))
        ok += _expect_named(path, row, lambda: read_gps_csv(path))
    print(f"\nGPS CSV: {ROWS} rows, {ok} read, {ROWS - ok} refused with a named error")
    assert 0 < ok < ROWS


def _released_value(rng: random.Random):
    kind = rng.random()
    if kind < 0.6:
        return [_field(rng, TEXTS) for _ in range(rng.choice([3, 3, 3, 2, 4, 0]))]
    if kind < 0.8:
        return rng.choice([None, 1, 2.5, True, "text", {"caption": "x"}, [1, 2, 3], [[], {}, None]])
    return [rng.choice(TEXTS), "located in Oakland, on Forbes Ave", "Forbes Ave & Craig St, Oakland"]


@pytest.mark.slow
def test_released_annotation_reader_10k_entries(tmp_path):
    from data_gen.released import read_released_annotations
    rng = random.Random(12)
    path = tmp_path / "train.json"
    good = json.dumps(["a street", "located in Oakland, on Forbes Ave", "Forbes Ave & Craig St, Oakland"])
    ok = 0
    for _ in range(ROWS):
        key, value = _field(rng, PATHS), _released_value(rng)
        body = "{" + json.dumps("000/first.jpg") + ": " + good + ", " + json.dumps(key) + ": " + \
            json.dumps(value, allow_nan=True) + "}"
        if rng.random() < 0.03:                               # cut short or bytes mangled
            body = body[:rng.randrange(len(body))]
        path.write_bytes(_encode(body, rng))
        ok += _expect_named(path, body, lambda: read_released_annotations(path))
    print(f"\nreleased JSON: {ROWS} entries, {ok} files read, {ROWS - ok} refused with a named error")
    assert 0 < ok < ROWS


@pytest.mark.slow
def test_utm_coordinate_reader_10k_rows(tmp_path):
    from data_gen.released import read_utm_coordinates
    rng = random.Random(13)
    path = tmp_path / "utm.csv"
    ok = 0
    for _ in range(ROWS):
        n = rng.choice([3, 3, 3, 2, 4, 1])
        sep = rng.choice([",", "\t", " "])
        row = sep.join([_field(rng, PATHS)] + [_field(rng, NUMBERS) for _ in range(n - 1)])
        path.write_bytes(b"image,easting,northing\nfirst.jpg,589500,4477300\n" + _encode(row, rng))
        ok += _expect_named(path, row, lambda: read_utm_coordinates(path))
    print(f"\nUTM table: {ROWS} rows, {ok} read, {ROWS - ok} refused with a named error")
    assert 0 < ok < ROWS


def _reference_line(rng: random.Random) -> str:
    rec = {"id": rng.choice(["r1", "r0", 5, True, None, "", "🙂", "x" * 200]),
           "street": _field(rng, TEXTS), "district": _field(rng, TEXTS), "city": "Pittsburgh"}
    for key in ("lat", "lon"):
        if rng.random() < 0.5:
            rec[key] = rng.choice([40.4, -79.9, 91, -181, float("nan"), float("inf"), "40", True,
                                   None, 10 ** 400, [1]])
    if rng.random() < 0.5:
        rec["image"] = rng.choice(PATHS + [5, None, ["a.jpg"]])
    for key in rng.sample(list(rec), rng.randint(0, 2)):
        del rec[key]
    text = json.dumps(rec, allow_nan=True, default=str)
    r = rng.random()
    if r < 0.05:
        return text[:rng.randrange(len(text) + 1)]
    if r < 0.08:
        return rng.choice(["[]", "null", "1", '"text"', "{" * 3000, "   "])
    return text


@pytest.mark.slow
def test_references_reader_10k_lines(tmp_path):
    from eval.references import from_jsonl
    rng = random.Random(14)
    path = tmp_path / "refs.jsonl"
    first = json.dumps({"id": "r0", "street": "Grant Street", "district": "Downtown",
                        "city": "Pittsburgh"})
    ok = 0
    for _ in range(ROWS):
        line = _reference_line(rng)
        path.write_bytes(first.encode() + b"\n" + _encode(line, rng) + b"\n")
        ok += _expect_named(path, line, lambda: from_jsonl(path))
    print(f"\nreferences JSONL: {ROWS} lines, {ok} read, {ROWS - ok} refused with a named error")
    assert 0 < ok < ROWS


@pytest.mark.slow
def test_answers_reader_10k_lines(tmp_path):
    """One file of 10k generated lines: each is an answer (or reported error) for its id, or an
    issue naming its line; nothing raises and nothing is silently lost."""
    from eval.backends.answers import AnswersBackend
    from eval.backends.base import Item
    rng = random.Random(15)
    ids = [f"i{k}" for k in range(3000)]
    chunks = []
    for _ in range(ROWS):
        rec = {"id": rng.choice(ids + [7, None, "ghost"]),
               rng.choice(["answer", "answer", "error", "ans"]): rng.choice(
                   [answer(rng), {"street": "Grant Street"}, ["a", 1], None, 3.5, ""])}
        line = json.dumps(rec)
        if rng.random() < 0.08:
            line = line[:rng.randrange(len(line) + 1)]
        chunks.append(_encode(line, rng))
    path = tmp_path / "answers.jsonl"
    path.write_bytes(b"\n".join(chunks) + b"\n")
    with open(path, encoding="utf-8", errors="replace") as f:      # lines as the reader sees them
        lines = sum(1 for line in f if line.strip())
    backend = AnswersBackend(path)
    results = list(backend.generate([Item(i, None, "q") for i in ids]))
    from_lines = [r for r in results if not (r.error and "no answer for this id" in r.error)]
    assert len(results) == len(ids)
    assert all(isinstance(i.get("line"), int) and i["reason"] for i in backend.issues)
    assert len(from_lines) + len(backend.issues) == lines
    print(f"\nanswers JSONL: {lines} lines, {len(from_lines)} results, "
          f"{len(backend.issues)} issues naming their line")
