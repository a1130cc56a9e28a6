"""Free-text answers -> {street, cross_street, district, city}, matched against one city's gazetteer.

Usable on its own::

    from eval.address_parser import AddressParser
    from eval.gazetteer import Gazetteer
    parser = AddressParser(Gazetteer.load("runs/helsinki/data"))
    parser.parse("The address of this photo might be Aleksanterin katu, Kluuvi, Helsinki.").street
    # -> 'Aleksanterinkatu'

Lookup tables are built once per gazetteer (:class:`eval.matching.NameIndex`); a parse tokenises
the answer once (:mod:`eval.normalize`) and probes the tables. Rules, in order:

- **Empty** text -> ``kind="empty"``. Text longer than ``max_chars`` is cut (``truncated``).
- **JSON** answers (an object, a list of objects, in a code fence or not) are read by key: street /
  road, cross_street / intersection, district / neighborhood / suburb / area, city / town,
  house_number, and a free-text address / location whose parse fills the keys that are missing.
- **Lists of guesses** (numbered or bulleted lines, or inline "1. ... 2. ..."): the first guess that
  names a street (else a district) is the answer; the city may come from anywhere in the text.
- **Street**: the first street match in text order, after overlaps are resolved (longest, then best
  score, then earliest). A second street counts as the **cross street** only when the words between
  the two are connectors ("&", "and", "at", "near", "corner of", "that meets", "/"); after "or" it is
  an alternative and is ignored ("alternatives").
- **District**: the first district match, *capitalised as a name* unless the answer has no case at
  all (all lower or all upper case). So "possibly in a downtown area" names no district while
  "Grant Street, Downtown" names Downtown: a lower-case "downtown" is the common noun. Matches
  inside a longer street name ("Oakland Avenue") are not districts.
- **City**: the earliest of the gazetteer's city (or an alias) and any *other* city (a capitalised
  phrase before ", <state/country>", or a well-known city, see :mod:`eval.places`). An answer whose
  city is another city is ``kind="other_city"`` and names no street or district of this city: the
  gazetteer describes only its own city, so "Fifth Avenue, New York" is not Pittsburgh's.
- **Qualifiers** are reported, not guessed away: ``house_number`` ("400 Fifth Avenue",
  "Aleksanterinkatu 52"), ``near`` (and the phrase after it), ``corner``, ``json``, ``list``,
  ``alternatives``, ``hedged`` (a refusal phrase but an address anyway), ``truncated``.
- **Refusal**: a refusal phrase ("I cannot determine", "not enough information", "I'm sorry") and
  no street or district -> ``kind="refusal"``. No street, district or city and no refusal ->
  ``kind="vague"`` ("a city street, possibly in a downtown area").

``parse`` never raises: an unexpected internal error becomes ``kind="error"`` with the reason, so a
single odd answer cannot stop an evaluation (the property tests check that this never happens).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from eval.gazetteer import Gazetteer
from eval.matching import Match, NameIndex
from eval.normalize import STREET_TYPES, Token, tokenize
from eval.places import WORLD_CITIES, capitals_only, region_names

KINDS = ("address", "partial", "other_city", "vague", "refusal", "empty", "error")

_REFUSAL = re.compile(
    r"\b(?:cannot|cant|can not|could not|couldnt|unable to|not able to|impossible to|"
    r"not possible to|no way to|hard to|difficult to)\s+(?:\w+\s+){0,3}?"
    r"(?:determine|tell|identify|say|know|pinpoint|provide|figure|be certain|be sure|infer|locate|"
    r"give|specify|ascertain|confirm|predict|recogni[sz]e|see|read)\b"
    r"|\b(?:dont|do not) know\b|\bcannot be determined\b|\bnot identifiable\b"
    r"|\b(?:not|insufficient) (?:enough |sufficient )?(?:information|details?|context|visual cues)\b"
    r"|\b(?:im|i am) (?:sorry|not sure|unsure)\b|\bas an ai\b"
    r"|^unknown$|\b(?:location|address|place) (?:is )?unknown\b|\bunknown (?:location|address)\b")
_NEAR_CUES = (("near",), ("nearby",), ("close", "to"), ("next", "to"), ("not", "far", "from"),
              ("in", "the", "vicinity", "of"))
_CORNER_CUES = frozenset({"corner", "intersection", "junction", "crossroads"})
_CUE_WORDS = frozenset(cue[0] for cue in _NEAR_CUES) | _CORNER_CUES   # words a cue can start with
_LINK_WORDS = frozenset({"and", "at", "near", "by", "meets", "meet", "crosses", "crossing",
                         "cross", "intersects", "with", "corner", "intersection", "junction", "off",
                         "between", "to", "x"})
_FILLER_WORDS = frozenset({"the", "of", "a", "that", "which", "where", "it", "its", "close", "next",
                           "just", "section", "on", "right"})
_SENTENCE_BREAK = re.compile(r"[.;!?\n]")
_HOUSE_NUMBER = re.compile(r"\d{1,5}[a-z]?")
_UNIT_WORDS = frozenset({"m", "meter", "meters", "metre", "metres", "km", "kilometers", "feet",
                         "foot", "fort", "yards", "miles", "mi", "percent", "degrees", "am", "pm"})
_LIST_LINE = re.compile(r"^[ \t]*(?:\(?\d{1,2}[.)]|[-*•·]|\(?[a-e]\))[ \t]+(\S.*)$", re.M)
_INLINE_NUMBER = re.compile(r"(?:^|(?<=\s))\(?([1-9])[.)]\s+")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_JSON_MAX_CHARS = 20_000

_JSON_KEYS = {
    "street": ("street", "road", "street_name", "main_street", "route", "thoroughfare"),
    "cross_street": ("cross_street", "cross", "intersection", "crossing", "intersecting_street"),
    "district": ("district", "neighborhood", "neighbourhood", "suburb", "area", "quarter",
                 "borough", "city_district"),
    "city": ("city", "town", "municipality", "locality"),
    "house_number": ("house_number", "housenumber", "number", "street_number"),
    "address": ("address", "street_address", "full_address", "formatted_address", "location",
                "answer", "prediction", "description"),
}


@dataclass
class ParserConfig:
    fuzzy_cutoff: float = field(default=90.0, metadata={
        "help": "rapidfuzz ratio (0-100) a misspelt name needs to match; above 100 turns fuzzy "
                "matching off"})
    min_fuzzy_chars: int = field(default=5, metadata={
        "help": "names and spans shorter than this (letters, no spaces) match only exactly"})
    max_chars: int = field(default=4000, metadata={"help": "answers are cut to this many characters"})


@dataclass
class ParsedAnswer:
    kind: str                          # one of KINDS
    street: str | None = None          # gazetteer names (or None)
    cross_street: str | None = None
    district: str | None = None
    city: str | None = None            # the gazetteer's city, or the other city as written
    city_in_gazetteer: bool | None = None
    house_number: str | None = None
    near: str | None = None            # the phrase after "near", as written
    qualifiers: list[str] = field(default_factory=list)
    street_score: float | None = None  # 100 exact, else the fuzzy score
    note: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Fields:
    """What one piece of text names, before the answer-level rules (kind, other city) apply."""

    street: Match | None = None
    cross: Match | None = None
    district: str | None = None
    city: str | None = None
    city_in_gazetteer: bool | None = None
    city_pos: int = 1 << 30
    house_number: str | None = None
    near: str | None = None
    qualifiers: list[str] = field(default_factory=list)
    has_street_or_district: bool = False


class AddressParser:
    """Compiled lookup tables for one gazetteer; ``parse`` one answer, ``parse_many`` a list."""

    def __init__(self, gazetteer: Gazetteer, config: ParserConfig | None = None):
        self.gazetteer = gazetteer
        self.config = config or ParserConfig()
        kw = {"fuzzy_cutoff": self.config.fuzzy_cutoff, "min_fuzzy_chars": self.config.min_fuzzy_chars}
        g = gazetteer
        self.streets = NameIndex([(n, n) for n in g.street_names] + list(g.street_aliases.items()), **kw)
        self.districts = NameIndex([(n, n) for n in g.districts] + list(g.district_aliases.items()),
                                   **kw)
        self.cities = NameIndex([(g.city, g.city)] + [(a, g.city) for a in g.city_aliases], **kw)
        own = {k for index in (self.streets, self.districts, self.cities) for k in index.exact}
        self.regions = _region_index()
        self.world = NameIndex([(c, c) for c in WORLD_CITIES
                                if "".join(t.word for t in tokenize(c)) not in own],
                               fuzzy_cutoff=101, min_fuzzy_chars=99)

    # ---- public --------------------------------------------------------------------------------

    def parse(self, answer) -> ParsedAnswer:
        try:
            return self._parse(answer)
        except Exception as exc:  # noqa: BLE001 - a parse must never stop an evaluation
            return ParsedAnswer(kind="error", note=f"parser error {type(exc).__name__}: {exc}")

    def parse_many(self, answers) -> list[ParsedAnswer]:
        return [self.parse(a) for a in answers]

    # ---- answer level --------------------------------------------------------------------------

    def _parse(self, answer) -> ParsedAnswer:
        text = answer if isinstance(answer, str) else ("" if answer is None else str(answer))
        if not text.strip():
            return ParsedAnswer(kind="empty")
        qualifiers = []
        if len(text) > self.config.max_chars:
            text = text[:self.config.max_chars]
            qualifiers.append("truncated")
        payload = _json_payload(text)
        if isinstance(payload, dict):
            fields = self._from_json(payload)
            qualifiers.append("json")
        elif isinstance(payload, str):
            fields = self._from_text(payload)
            qualifiers += ["json", "list"]
        else:
            fields = self._from_guesses(text)
        refused = bool(_REFUSAL.search(" ".join(t.word for t in _tokens(text))))
        return self._assemble(fields, qualifiers, refused)

    def _assemble(self, f: _Fields, qualifiers: list[str], refused: bool) -> ParsedAnswer:
        out = ParsedAnswer(kind="vague", city=f.city, city_in_gazetteer=f.city_in_gazetteer,
                           house_number=f.house_number, near=f.near,
                           qualifiers=list(dict.fromkeys(qualifiers + f.qualifiers)))
        if f.city is not None and not f.city_in_gazetteer:
            out.kind = "other_city"
            if f.has_street_or_district:
                out.note = f"names {f.city}, not {self.gazetteer.city}: its streets are not this city's"
            return out
        if f.street is not None:
            out.street, out.street_score = f.street.name, f.street.score
            out.cross_street = f.cross.name if f.cross is not None else None
        out.district = f.district
        if out.street is not None:
            out.kind = "address"
        elif out.district is not None or out.city is not None:
            out.kind = "partial"
        elif refused:
            out.kind = "refusal"
        if refused and out.kind != "refusal":
            out.qualifiers.append("hedged")
        return out

    def _from_guesses(self, text: str) -> _Fields:
        """The first guess of a list that names a street (else a district); the city may come from
        the rest of the text."""
        items = _list_items(text)
        if len(items) < 2:
            return self._from_text(text)
        parsed = [self._from_text(item) for item in items]
        chosen = next((f for f in parsed if f.street is not None), None) or next(
            (f for f in parsed if f.district is not None), parsed[0])
        if chosen.city is None:
            whole = self._from_text(text)
            chosen.city, chosen.city_in_gazetteer = whole.city, whole.city_in_gazetteer
        chosen.qualifiers.append("list")
        return chosen

    def _from_json(self, obj: dict) -> _Fields:
        values = {_json_key(k): v for k, v in obj.items()}

        def get(kind: str) -> str | None:
            for key in _JSON_KEYS[kind]:
                v = values.get(key)
                if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip():
                    return str(v)
            return None

        raw = {kind: get(kind) for kind in _JSON_KEYS}
        if not any(raw.values()):
            flat = ", ".join(str(v) for v in obj.values() if isinstance(v, (str, int, float)))
            return self._from_text(flat)
        f = self._from_text(raw["address"]) if raw["address"] else _Fields()
        if raw["street"]:
            sub = self._from_text(raw["street"])
            if sub.street is not None:
                f.street, f.house_number = sub.street, sub.house_number or f.house_number
                f.cross = sub.cross or f.cross
        if raw["cross_street"]:
            hits = self.streets.find([t.word for t in tokenize(raw["cross_street"])])
            f.cross = hits[0] if hits else f.cross
        if raw["district"]:
            hits = self.districts.find([t.word for t in tokenize(raw["district"])])
            f.district = hits[0].name if hits else f.district
        if raw["city"]:
            hits = self.cities.find([t.word for t in tokenize(raw["city"])])
            if hits:
                f.city, f.city_in_gazetteer = self.gazetteer.city, True
            else:
                f.city, f.city_in_gazetteer = raw["city"].split(",")[0].strip(), False
        if raw["house_number"]:
            f.house_number = raw["house_number"]
        f.has_street_or_district = f.street is not None or f.district is not None
        if f.house_number:
            f.qualifiers.append("house_number")
        return f

    # ---- one piece of text ---------------------------------------------------------------------

    def _from_text(self, text: str) -> _Fields:
        tokens = _tokens(text)
        words = [t.word for t in tokens]
        f = _Fields()
        streets = self.streets.find(words)
        districts = [m for m in self.districts.find(words)
                     if _is_name_cased(text, tokens[m.start]) and not _inside(m, streets)]
        f.has_street_or_district = bool(streets or districts)
        if streets:
            self._street_and_cross(text, tokens, words, streets, f)
        if districts:
            f.district = districts[0].name
        self._city(text, tokens, words, streets + districts, f)
        self._cues(text, tokens, words, f)
        return f

    def _street_and_cross(self, text: str, tokens: Sequence[Token], words: list[str],
                          streets: list[Match], f: _Fields) -> None:
        first = streets[0]
        f.street = first
        if len(streets) > 1:
            second = streets[1]
            gap_words = words[first.end:second.start]
            gap_raw = text[tokens[first.end - 1].end:tokens[second.start].start]
            if _is_connector(gap_words, gap_raw):
                f.cross = second
            elif "or" in gap_words or "either" in gap_words:
                f.qualifiers.append("alternatives")
        number = _house_number(text, tokens, words, first)
        if number is not None:
            f.house_number = number
            f.qualifiers.append("house_number")

    def _city(self, text: str, tokens: Sequence[Token], words: list[str], places: list[Match],
              f: _Fields) -> None:
        """The earliest mention of the gazetteer's city or of another city."""
        own = [m for m in self.cities.find(words) if not _inside(m, places)]
        if own:
            f.city, f.city_in_gazetteer, f.city_pos = self.gazetteer.city, True, own[0].start
        other = self._other_city(text, tokens, words, places + own)
        if other is not None and other[0] < f.city_pos:
            f.city_pos, f.city, f.city_in_gazetteer = other[0], other[1], False

    def _other_city(self, text: str, tokens: Sequence[Token], words: list[str],
                    taken: list[Match]) -> tuple[int, str] | None:
        """(token index, name as written) of the first other city, or None."""
        found: list[tuple[int, str]] = []
        for m in self.world.find(words):
            if not _inside(m, taken) and _is_name_cased(text, tokens[m.start]):
                found.append((m.start, text[tokens[m.start].start:tokens[m.end - 1].end]))
        regions = self.regions.find(words)
        for m in regions:
            surface = text[tokens[m.start].start:tokens[m.end - 1].end]
            if capitals_only(m.name) and not surface.replace(".", "").isupper():
                continue
            if m.start == 0 or not re.fullmatch(r"\s*,\s*", text[tokens[m.start - 1].end:
                                                                  tokens[m.start].start]):
                continue
            end = m.start            # the capitalised phrase just before the comma
            start = end
            while (start > 0 and end - start < 3 and _is_name_cased(text, tokens[start - 1])
                   and (start == end or re.fullmatch(r"[ \t-]+", text[tokens[start - 1].end:
                                                                       tokens[start].start]))):
                start -= 1
            if start == end:
                continue
            phrase = Match(start, end, "", 100.0, 0)
            if (any(phrase.overlaps(other) for other in (*regions, *taken))
                    or words[end - 1] in STREET_TYPES):     # "Some Road, Ohio" names a street
                continue
            found.append((start, text[tokens[start].start:tokens[end - 1].end]))
        return min(found) if found else None

    def _cues(self, text: str, tokens: Sequence[Token], words: list[str], f: _Fields) -> None:
        for i in range(len(words)):
            if words[i] not in _CUE_WORDS:
                continue
            for cue in _NEAR_CUES:
                if tuple(words[i:i + len(cue)]) == cue:
                    f.qualifiers.append("near")
                    if f.near is None and i + len(cue) < len(tokens):
                        rest = text[tokens[i + len(cue)].start:]
                        f.near = _SENTENCE_BREAK.split(rest.split(",")[0])[0].strip()[:80] or None
                    break
            if words[i] in _CORNER_CUES:
                f.qualifiers.append("corner")


# ---- helpers ---------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _tokens(text: str) -> tuple[Token, ...]:
    """``tokenize`` memoised: one parse reads the same text for its fields and for refusals, and
    a list's items again for the whole answer (tokens are immutable, so sharing them is safe)."""
    return tuple(tokenize(text))


@lru_cache(maxsize=1)
def _region_index() -> NameIndex:
    return NameIndex([(r, r) for r in region_names()], fuzzy_cutoff=101, min_fuzzy_chars=99)


def _inside(m: Match, others: list[Match]) -> bool:
    """``m`` lies within a strictly longer match of another category."""
    return any(o.start <= m.start and m.end <= o.end and o.end - o.start > m.end - m.start
               for o in others)


def _is_name_cased(text: str, token: Token) -> bool:
    """The word starts with a capital, or the whole answer carries no case information."""
    first = text[token.start:token.start + 1]
    if first.isupper() or not first.isalpha():
        return True
    return not any(c.isupper() for c in text) or not any(c.islower() for c in text)


def _is_connector(gap_words: list[str], gap_raw: str) -> bool:
    """Do the words between two streets join them into an intersection ("&", "and", "at"...)?"""
    raw = gap_raw[1:] if gap_raw.startswith(".") else gap_raw   # the dot of "St." / "Ave."
    if not gap_words or len(gap_words) > 6 or _SENTENCE_BREAK.search(raw):
        return False
    allowed = _LINK_WORDS | _FILLER_WORDS
    return all(w in allowed for w in gap_words) and any(w in _LINK_WORDS for w in gap_words)


def _house_number(text: str, tokens: Sequence[Token], words: list[str], street: Match) -> str | None:
    """"400 Fifth Avenue" or "Aleksanterinkatu 52" (a number next to the street, not a distance)."""
    i = street.start - 1
    if i >= 0 and _HOUSE_NUMBER.fullmatch(words[i]) and not text[tokens[i].end:
                                                                 tokens[street.start].start].strip():
        return text[tokens[i].start:tokens[i].end]
    j = street.end
    if (j < len(words) and _HOUSE_NUMBER.fullmatch(words[j])
            and not text[tokens[j - 1].end:tokens[j].start].strip()
            and (j + 1 >= len(words) or words[j + 1] not in _UNIT_WORDS)):
        return text[tokens[j].start:tokens[j].end]
    return None


def _list_items(text: str) -> list[str]:
    """Items of a numbered or bulleted list (one per line, or inline "1. ... 2. ..."), else []."""
    lines = _LIST_LINE.findall(text)
    if len(lines) >= 2:
        return lines
    marks = list(_INLINE_NUMBER.finditer(text))
    numbers = [int(m.group(1)) for m in marks]
    if len(marks) >= 2 and numbers == list(range(1, len(marks) + 1)):
        ends = [m.start() for m in marks[1:]] + [len(text)]
        return [text[m.end():e] for m, e in zip(marks, ends)]
    return []


def _json_key(key) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def _json_payload(text: str) -> dict | str | None:
    """The JSON object an answer holds (first of a list), a first string guess, or None."""
    if "{" not in text and "[" not in text:
        return None
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1)] if fenced else []
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    start = min(starts)
    end = max(text.rfind("}"), text.rfind("]"))
    if end > start:
        candidates.append(text[start:end + 1])
    for cand in candidates:
        cand = cand.strip()
        if not cand or len(cand) > _JSON_MAX_CHARS or cand[0] not in "{[":
            continue
        try:
            value = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, (dict, str)) and v), None)
        if isinstance(value, dict) and value:
            return value
        if isinstance(value, str):
            return value
    return None
