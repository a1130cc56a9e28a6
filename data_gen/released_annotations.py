"""Read one released AddressCLIP annotation file (Pitts-IAL, SF-IAL) into records.

Per split there is a JSON object keyed by the image's relative path (``000/000015_pitch1_yaw1.jpg``,
sometimes written ``./000/...``) whose value is a list read as ``[caption, verbose_address,
canonical_address]``. That field order comes from a third-party reader, so it is treated as likely
rather than known: each entry's fields are recognised by their form

- canonical: one of :data:`CANONICAL_FORMS`, ``"{street} & {cross street}, {district}"``,
  ``"{street}, {district} ({cross street})"`` or ``"{street}, {district}"``;
- verbose:   starts with ``"located in"``;
- caption:   the remaining one,

and the field order and canonical form found per entry are counted for ``meta.json``. An entry
whose canonical address fits no form is an error naming the file and key.
"""

from __future__ import annotations

import collections
import functools
import json
import re
from pathlib import Path
from typing import NamedTuple

from data_gen import addresses as addr
from ial_core.errors import DataError, SkipReport, handle, skip_or_raise, tagged_error
from ial_core.paths import _PLAIN as _PLAIN_PATH
from ial_core.paths import safe_relative_path

ROLES = ("caption", "verbose", "canonical")
DEFAULT_ORDER = ("caption", "verbose", "canonical")  # the schema's annotations/{split}.json layout
_ROLE_ALIASES = {"caption": "caption", "verbose": "verbose", "verbose_address": "verbose",
                 "canonical": "canonical", "canonical_address": "canonical", "address": "canonical"}
_VERBOSE_PREFIX = "located in"
_MAX_STREET_WORDS = 8       # detection only: longer phrases are prose, not a street or district name
_SENTENCE_END = (".", "!", "?")
# the ways a canonical address is written in the released files (meta.json names them so)
FORM_AMPERSAND = "{street} & {cross street}, {district}"
FORM_PARENTHESES = "{street}, {district} ({cross street})"
FORM_STREET = "{street}, {district}"
CANONICAL_FORMS = (FORM_AMPERSAND, FORM_PARENTHESES, FORM_STREET)
_TRAILING_PARENS = re.compile(r"^(?P<district>[^()]*?)\s*\((?P<cross>[^()]*)\)\s*$")


# --------------------------------------------------------------------------------------------------
# Released annotation JSON
# --------------------------------------------------------------------------------------------------

class ReleasedRecord(NamedTuple):
    """One released entry with its canonical address split into street, cross street and district.

    (A named tuple, not a dataclass: millions are made, and a frozen dataclass is several times
    slower to create.)"""

    image: str
    caption: str
    verbose_address: str
    canonical_address: str
    street: str
    cross_street: str
    district: str
    field_order: tuple[str, str, str] = DEFAULT_ORDER   # how this entry's list was read
    canonical_form: str = FORM_AMPERSAND                # which of CANONICAL_FORMS it was written in


class ReleasedAnnotations(list):
    """The records of one file, plus how their fields were assigned (kept for meta.json).

    ``field_order`` is the order used for most entries; ``order_counts`` counts entries per order
    (``"caption,verbose,canonical": n``); ``fallback`` counts entries whose form was ambiguous and that
    were read with the file's majority order; ``explicit`` is True when the caller gave the order;
    ``form_counts`` counts entries per canonical form (:data:`CANONICAL_FORMS`).
    """

    def __init__(self, records=(), *, source=None, field_order=DEFAULT_ORDER, order_counts=None,
                 fallback=0, explicit=False, form_counts=None):
        super().__init__(records)
        self.form_counts = dict(form_counts or {})
        self.source = source
        self.field_order = tuple(field_order)
        self.order_counts = dict(order_counts or {})
        self.fallback = fallback
        self.explicit = explicit

    def order_info(self) -> dict:
        return {"used": ",".join(self.field_order), "explicit": self.explicit,
                "per_entry": dict(sorted(self.order_counts.items())), "fallback": self.fallback}


_error = tagged_error


def _clean(text: str) -> str:
    """Collapse runs of whitespace so that labels compare equal regardless of spacing."""
    return " ".join(text.split())




def parse_canonical_form(text: str) -> tuple[str, str, str, str]:
    """``(street, cross street, district, form)`` of a canonical address in any of
    :data:`CANONICAL_FORMS`; ValueError with the reason when the text fits none.

    The district is what follows the LAST comma. ``"{street} & {cross}, {district}"`` takes the cross
    street after the first ``&``; ``"{street}, {district} ({cross})"`` takes it from the trailing
    parentheses (read with the ``&`` form, ``"Oakland (Craig St)"`` would become a district of its
    own). An address mixing both, or with parentheses anywhere else, fits no form.
    """
    result = _parse_cached(text)
    if isinstance(result, ValueError):
        raise ValueError(*result.args)
    return result


@functools.lru_cache(maxsize=1 << 16)   # a benchmark has a few thousand distinct addresses
def _parse_cached(text: str):
    try:
        return _parse_canonical_form(text)
    except ValueError as exc:
        return exc


@functools.lru_cache(maxsize=1 << 16)
def _parse_record_address(text: str) -> tuple[str, str, str, str, str]:
    """:func:`parse_canonical_form` plus the address rewritten in the schema's canonical form."""
    street, cross, district, form = parse_canonical_form(text)
    return street, cross, district, form, addr.canonical_address(street, cross, district)


def _parse_canonical_form(text: str) -> tuple[str, str, str, str]:
    head, sep, tail = text.rpartition(",")
    if not sep:
        raise ValueError("no ', {district}' part")
    street, amp, cross = head.partition("&")
    street, cross = _clean(street), _clean(cross)
    form = FORM_AMPERSAND if amp else FORM_STREET
    if "(" in tail or ")" in tail:
        match = _TRAILING_PARENS.match(tail)
        if match is None:
            raise ValueError("unbalanced or misplaced parentheses after the last comma")
        if amp:
            raise ValueError("mixes the '&' and the '(cross street)' forms")
        tail, cross, form = match.group("district"), _clean(match.group("cross")), FORM_PARENTHESES
        if not cross:
            raise ValueError("empty cross street in '( )'")
    if "(" in head or ")" in head:
        raise ValueError("parentheses before the last comma")
    district = _clean(tail)
    if not district:
        raise ValueError("empty district after the last comma")
    if not street:
        raise ValueError("empty street name")
    if amp and not cross:
        raise ValueError("empty cross street after '&'")
    return street, cross, district, form


def parse_canonical(text: str) -> tuple[str, str, str]:
    """``(street, cross street, district)`` of a canonical address (see :func:`parse_canonical_form`)."""
    return parse_canonical_form(text)[:3]


def _canonical_score(text: str) -> int:
    """2: clearly ``X & Y, D`` or ``X, D (Y)``; 1: plausibly ``X, D``; 0: not an address
    (detection only)."""
    stripped = text.strip()
    if "," not in stripped or stripped.endswith(_SENTENCE_END) or _looks_verbose(stripped):
        return 0
    try:
        street, cross, district, _ = parse_canonical_form(stripped)
    except ValueError:
        return 0
    if any(len(part.split()) > _MAX_STREET_WORDS for part in (street, cross, district)):
        return 0
    if "," in street or "," in cross:
        return 0
    return 2 if cross else 1


def _looks_verbose(text: str) -> bool:
    return text.strip().lower().startswith(_VERBOSE_PREFIX)


_VERBOSE = -1


@functools.lru_cache(maxsize=1 << 18)   # verbose and canonical texts repeat across a file
def _field_kind(text: str) -> int:
    """``_VERBOSE`` for a verbose address, else its canonical score (detection only)."""
    return _VERBOSE if _looks_verbose(text) else _canonical_score(text)


def detect_order(values) -> tuple[str, str, str] | None:
    """Which position holds which field, judged from the text alone; None when ambiguous."""
    return _order_from_kinds(tuple(map(_field_kind, values)))


@functools.cache      # at most a few hundred kind triples exist
def _order_from_kinds(kinds: tuple[int, ...]) -> tuple[str, str, str] | None:
    verbose = [i for i, k in enumerate(kinds) if k == _VERBOSE]
    scores = [max(k, 0) for k in kinds]
    best = max(scores)
    canon = [i for i, s in enumerate(scores) if s == best and s > 0]
    if len(canon) != 1 or len(verbose) != 1:
        return None
    roles = ["caption"] * 3
    roles[canon[0]] = "canonical"
    roles[verbose[0]] = "verbose"
    return tuple(roles)


def parse_field_order(order) -> tuple[str, str, str]:
    """Accept ``"caption,verbose,canonical"`` or a sequence of the three role names (aliases allowed)."""
    items = order.split(",") if isinstance(order, str) else list(order)
    try:
        roles = tuple(_ROLE_ALIASES[str(item).strip().lower()] for item in items)
    except KeyError as exc:
        raise ValueError(f"unknown field {exc.args[0]!r} in field order {order!r}; "
                         f"use the names {', '.join(ROLES)}") from None
    if sorted(roles) != sorted(ROLES):
        raise ValueError(f"field order {order!r} must name each of {', '.join(ROLES)} exactly once")
    return roles


class _Pairs:
    """A JSON object kept as its key/value pairs, so that duplicate keys are not silently merged."""

    def __init__(self, pairs):
        self.pairs = pairs


def _first_bad_byte_line(raw: bytes) -> int | None:
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        return raw[:exc.start].count(b"\n") + 1


def _is_unicode(text: str) -> bool:
    """False for text holding lone surrogates (undecodable bytes, or \\ud800-style JSON escapes)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _load_pairs(path: Path) -> tuple[list[tuple], bool]:
    """Read a JSON object's entries; bytes that are not UTF-8 survive as surrogates to be named per key.

    Also says whether any text can hold surrogates (undecodable bytes or ``\\ud800``-style
    escapes); when none can, the per-value UTF-8 check is skipped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read annotation file ({exc.strerror or exc})", path=path) from exc
    bad_line = _first_bad_byte_line(raw)
    text = raw.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    try:
        data = json.loads(text, object_pairs_hook=_Pairs)
    except (json.JSONDecodeError, RecursionError) as exc:
        if bad_line is not None:
            raise DataError("not valid UTF-8 (first bad byte on this line) and not readable JSON",
                            path=path, row=bad_line) from exc
        line = getattr(exc, "lineno", None)
        raise DataError(f"not valid JSON ({getattr(exc, 'msg', exc)})", path=path, row=line) from exc
    if not isinstance(data, _Pairs):
        raise DataError("expected a JSON object {image: [caption, verbose, canonical]}, "
                        f"got {type(data).__name__}", path=path)
    return data.pairs, bad_line is not None or _SURROGATE_ESCAPE.search(raw) is not None


def _check_value(path: Path, key, value, check_text: bool = True) -> list[str]:
    """The entry's value must be a list of exactly three strings of valid text."""
    if (not check_text and type(value) is list and len(value) == 3 and type(value[0]) is str
            and type(value[1]) is str and type(value[2]) is str):
        return value                     # the common case, without the checks one by one
    if check_text and not _is_unicode(key):
        raise _error("image key is not valid UTF-8 text", "not_utf8", path=path, row=key)
    if not isinstance(value, list):
        kind = "object" if isinstance(value, _Pairs) else type(value).__name__
        raise _error(f"value must be a list [caption, verbose, canonical], got {kind}",
                     "bad_value", path=path, row=key)
    if len(value) != 3 or not all(isinstance(v, str) for v in value):
        raise _error(f"value must be a list of 3 strings, got {_describe(value)}",
                     "bad_value", path=path, row=key)
    if check_text and not all(_is_unicode(v) for v in value):
        raise _error("value holds text that is not valid UTF-8", "not_utf8", path=path, row=key)
    return value


def _describe(value: list) -> str:
    kinds = ", ".join("object" if isinstance(v, _Pairs) else type(v).__name__ for v in value[:5])
    return f"{len(value)} item(s) [{kinds}{', ...' if len(value) > 5 else ''}]"


def _safe_image(path: Path, key: str) -> str:
    """The normalised relative image path; anything that could leave the image root is refused."""
    if key.isascii() and _PLAIN_PATH.fullmatch(key) and key[1:2] != ":":
        return key                       # already normal (see ial_core.paths)
    plain = key
    while plain.startswith("./"):     # the released files write some keys "./000/..."
        plain = plain[2:]
    try:
        image = safe_relative_path(plain, source=path, row=key)
    except DataError as error:
        error.reason = "unsafe_path"
        raise
    if image in (".", "") or key.replace("\\", "/").endswith("/"):
        raise _error(f"image path {key!r} names a folder, not a file", "unsafe_path",
                     path=path, row=key)
    return image


def _majority(counter: collections.Counter) -> tuple[str, str, str]:
    if not counter:
        return DEFAULT_ORDER
    # most common first; ties broken towards the schema's default order, then alphabetically
    return min(counter, key=lambda order: (-counter[order], order != DEFAULT_ORDER, order))


@functools.cache
def _positions(order: tuple[str, str, str]) -> tuple[int, int, int]:
    """Where caption, verbose and canonical sit under ``order``."""
    return order.index("caption"), order.index("verbose"), order.index("canonical")


def _build_record(path: Path, image: str, values: list[str], order) -> ReleasedRecord:
    at_caption, at_verbose, at_canonical = _positions(tuple(order))
    canonical = values[at_canonical]
    try:
        street, cross, district, form, normalised = _parse_record_address(canonical)
    except ValueError as exc:
        raise DataError(f"canonical address {canonical!r} (field {at_canonical + 1} "
                        f"under order {','.join(order)}) fits none of the forms "
                        f"{' | '.join(repr(f) for f in CANONICAL_FORMS)}: {exc}",
                        path=path, row=image) from None
    return ReleasedRecord(image, values[at_caption].strip(), values[at_verbose].strip(), normalised,
                          street, cross, district, order, form)


def read_released_annotations(json_path, *, field_order=None,
                              skip: SkipReport | None = None) -> ReleasedAnnotations:
    """Read one released split file into records, detecting each entry's field order.

    Bad entries raise :class:`DataError` naming the file and key, or are counted in ``skip``. A file
    that cannot be read at all (not JSON, not an object) raises, or with ``skip`` yields no records
    and is counted under ``unreadable_file``. Entries whose form is ambiguous are read with the order
    most entries of the file have (or ``field_order`` when given, which overrides detection).
    """
    path = Path(json_path)
    explicit = None if field_order is None else parse_field_order(field_order)
    try:
        pairs, check_text = _load_pairs(path)
    except DataError as error:
        handle(error, skip, "unreadable_file")
        return ReleasedAnnotations(source=path, field_order=explicit or DEFAULT_ORDER,
                                   explicit=explicit is not None)

    entries, seen = [], {}
    for key, value in pairs:
        try:
            values = _check_value(path, key, value, check_text)
            image = _safe_image(path, key)
            if image in seen:
                raise _error(f"duplicate image (also listed as {seen[image]!r})", "duplicate_image",
                             path=path, row=key)
            seen[image] = key
        except DataError as error:
            skip_or_raise(error, skip, "bad_value")
            continue
        entries.append((image, values, explicit or detect_order(values)))

    detected = collections.Counter(order for _, _, order in entries if order is not None)
    fallback_order = explicit or _majority(detected)
    records, used, forms = [], collections.Counter(), collections.Counter()
    for image, values, order in entries:
        order = order or fallback_order
        try:
            record = _build_record(path, image, values, order)
        except DataError as error:
            handle(error, skip, "bad_address")
            continue
        records.append(record)
        used[",".join(order)] += 1
        forms[record.canonical_form] += 1
    fallback = 0 if explicit else sum(1 for _, _, order in entries if order is None)
    return ReleasedAnnotations(records, source=path, field_order=fallback_order, order_counts=used,
                               fallback=fallback, explicit=explicit is not None, form_counts=forms)
