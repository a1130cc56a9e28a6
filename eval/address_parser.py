"""Free-text answers -> {street, cross_street, district, city}, matched against one city's gazetteer.

Usable on its own::

    from eval.address_parser import AddressParser
    from eval.gazetteer import Gazetteer
    parser = AddressParser(Gazetteer.load("runs/helsinki/data"))
    parser.parse("The address of this photo might be Aleksanterin katu, Kluuvi, Helsinki.").street
    # -> 'Aleksanterinkatu'

Lookup tables are built once per gazetteer (:class:`eval.matching.NameIndex`; the world gazetteer
of :mod:`eval.places` once per process); a parse tokenises the answer once (:mod:`eval.normalize`:
case, accents, punctuation and possessives folded) and probes the tables. Rules, in order:

- **Empty** text -> ``kind="empty"``. Text longer than ``max_chars`` is cut (``truncated``).
- **JSON** answers (an object or a list of objects, in a code fence or not, with text around) are
  read whole: keys at any depth (street / road, cross_street / intersection, district /
  neighborhood / suburb / area, city / town, state / region / province, country, house_number, and
  a free-text address / location whose parse fills the keys that are missing); a list value or a
  list of objects is a list of guesses, its first item the answer. The text around the JSON is
  parsed too: it may fill missing fields and may place the answer in another city.
- **Sentences**: no name is matched across a sentence end ("... Craig. Street view ..."); the dot
  of an abbreviation ("St.", "Ave.") is no sentence end, nor is a wrapped line ("Grant\nStreet"),
  while a blank line or a line starting with markup is.
- **Negation**: names inside the scope of "not", "isn't", "never", "unlike", "rather than",
  "instead of" (up to the next comma, sentence end or "but") are not what the answer claims: "It is
  not Grant Street" names no street, "not Grant Street but Smithfield Street" names Smithfield.
  ("not far from", "not sure" are not negations.)
- **Lists of guesses** (numbered or bulleted lines, or inline "1. ... 2. ..."): the first item that
  names a place (a street, district or city, here or elsewhere, or anything with a street-type
  word) is the answer, whatever it names; every guess's street is kept in ``guesses`` (for
  ``street_acc_any_guess``). The city may come from the text around the list.
- **Street**: the first street match in text order, after overlaps are resolved (longest, then best
  score, then earliest). A name of several words written all in lower case inside text that uses
  case is a common phrase, not a name ("main street", "market square"). Aliases (OSM ``name:sv``
  and the like, e.g. "Alexandersgatan") count as their street. A second street counts as the
  **cross street** only when the words between the two are connectors ("&", "and", "at", "near",
  "corner of", "that meets", "/"); after "or" it is an alternative ("alternatives").
- **District**: the first district match, *capitalised as a name* unless the answer has no case at
  all. So "possibly in a downtown area" names no district while "Grant Street, Downtown" names
  Downtown. Matches inside a longer street name ("Oakland Avenue") are not districts.
- **Somewhere else**: the answer's place is the earliest of the gazetteer's city (or an alias) and
  any place that contradicts it (:class:`eval.place_model.PlaceModel`): another city of the world
  gazetteer ("Minneapolis", "New York's Fifth Avenue", "Aleksanterinkatu, Lahti"), a region or
  country not the city's own ("Grant Street, Texas"); a region or country written right after the
  city or a district also counts ("Oakland, California"). World names that are the gazetteer's own
  (a district "Oakland") count as its own unless so contradicted. A world name counts when written
  as a name (capitalised, or the answer has no case; in lower case only as "in lahti" closing a
  phrase), with a place cue (after "in", "of", "near"... or a comma, or a possessive), not followed
  by a street type ("Boston Street" is a street) nor part of a longer name ("Carnegie Mellon
  University") and, first in a sentence, only when a comma follows ("Nice, France", not "Nice
  view"). A place named in a comparison ("similar streets exist in Chicago", "typical of London")
  does not count unless the street is compared too ("it resembles Fifth Avenue in New York").
  Regions other than US states and
  countries count only as a whole ", Region" element; abbreviations ("PA", "USA") only in capitals.
  Such an answer is ``kind="other_city"`` and names no street or district of this city: "Fifth
  Avenue, New York" is not Pittsburgh's.
- **Qualifiers** are reported, not guessed away: ``house_number`` ("400 Fifth Avenue",
  "Aleksanterinkatu 52"), ``near`` (and the phrase after it), ``corner``, ``json``, ``list``,
  ``alternatives``, ``negated`` (a name was negated), ``hedged`` (a refusal phrase but an address
  anyway), ``truncated``.
- **Refusal**: a refusal phrase ("I cannot determine", "not enough information", "I'm sorry") and
  no street or district -> ``kind="refusal"``. No street, district or city and no refusal ->
  ``kind="vague"`` ("a city street, possibly in a downtown area").

``parse`` never raises: an unexpected internal error becomes ``kind="error"`` with the reason, so a
single odd answer cannot stop an evaluation (the property tests check that this never happens).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from eval.gazetteer import Gazetteer
from eval.matching import Match, NameIndex
from eval.normalize import ABBREVIATIONS, COMPOUND_SUFFIXES, STREET_TYPES, Token, compact, tokenize
from eval.place_model import PlaceModel
from eval.places import COMMON_WORD_PLACES, code_key, world_places
from ial_core.config import option

KINDS = ("address", "partial", "other_city", "vague", "refusal", "empty", "error")

_REFUSAL = re.compile(
    r"\b(?:cannot|cant|can not|could not|couldnt|unable to|not able to|impossible to|"
    r"not possible to|no way to|hard to|difficult to)\s+(?:\w+\s+){0,3}?"
    r"(?:determine|tell|identify|say|know|pinpoint|provide|figure|be certain|be sure|infer|locate|"
    r"give|specify|ascertain|confirm|predict|recogni[sz]e|see|read)\b"
    r"|\b(?:dont|do not) know\b|\bcannot be determined\b|\bnot identifiable\b"
    r"|\b(?:not|insufficient)(?: provide| give| contain| have| offer)? (?:enough |sufficient )?"
    r"(?:information|details?|context|visual cues)\b"
    r"|\b(?:im|i am) (?:sorry|not sure|unsure)\b|\bas an ai\b"
    r"|^unknown$|\b(?:location|address|place) (?:is )?unknown\b|\bunknown (?:location|address)\b")
_NEAR_CUES = (("near",), ("nearby",), ("close", "to"), ("next", "to"), ("not", "far", "from"),
              ("in", "the", "vicinity", "of"))
_CORNER_CUES = frozenset({"corner", "intersection", "junction", "crossroads"})
_CUE_WORDS = frozenset(cue[0] for cue in _NEAR_CUES) | _CORNER_CUES   # words a cue can start with
_LINK_WORDS = frozenset({"and", "at", "near", "by", "meets", "meet", "crosses", "crossing",
                         "cross", "intersects", "with", "corner", "intersection", "junction", "off",
                         "between", "to", "x", "ja", "och", "und", "et", "y"})
_FILLER_WORDS = frozenset({"the", "of", "a", "that", "which", "where", "it", "its", "close", "next",
                           "just", "section", "on", "right"})
_SENTENCE_BREAK = re.compile(r"[.;!?\n]")
_HARD_BREAK = re.compile(r"[;!?\n]|\..*\.")
_STOP = re.compile(r"[.;!?]")
_HOUSE_NUMBER = re.compile(r"\d{1,5}[a-z]?")
_UNIT_WORDS = frozenset({"m", "meter", "meters", "metre", "metres", "km", "kilometers", "feet",
                         "foot", "fort", "yards", "miles", "mi", "percent", "degrees", "am", "pm"})
_LIST_LINE = re.compile(r"^[ \t]*(?:\(?\d{1,2}[.)]|[-*•·]|\(?[a-e]\))[ \t]+(\S.*)$", re.M)
_FIELD_LINE = re.compile(r"^[*_\s]*[A-Za-z][A-Za-z /-]{1,24}[*_\s]*:")
_INLINE_NUMBER = re.compile(r"(?:^|(?<=\s))\(?([1-9])[.)]\s+")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_JSON_MAX_CHARS = 20_000
_CODE = re.compile(r"(?<![\w.])((?:[A-Z]\.){2,3}|[A-Z]{2,3})(?![\w'’])")
_COMMA_GAP = re.compile(r"\s*,\s*")
_ATTACHED_GAP = re.compile(r"\s*,?\s*")

# Negation: words that open a scope, the word after "not" that makes it no negation, scope ends.
_NEGATORS = {("not",), ("isnt",), ("arent",), ("wasnt",), ("werent",), ("never",), ("unlike",),
             ("rather", "than"), ("instead", "of"), ("doesnt",), ("dont", "think")}
_NEGATOR_FIRST = frozenset(n[0] for n in _NEGATORS)
# Comparisons: a place named to compare with is not where the photo is.
_COMPARISONS = {("similar",), ("resembles",), ("resemble",), ("reminds",), ("reminiscent",),
                ("typical", "of"), ("akin",), ("compared",), ("much", "like"), ("like", "in")}
_COMPARISON_FIRST = frozenset(c[0] for c in _COMPARISONS)
_NOT_NEGATING = frozenset({"far", "sure", "certain", "entirely", "completely", "quite", "only",
                           "100", "absolutely", "exactly", "possible", "able", "enough", "much",
                           "clear", "know", "just", "too", "very"})
_SCOPE_ENDS = frozenset({"but", "however", "though", "although", "rather", "instead", "yet",
                         "more", "its", "it", "this", "probably", "likely", "perhaps", "maybe"})
_SCOPE_END_CHARS = re.compile(r"[,;:.!?\n()\[\]—–]| - ")
# Words that, after a place name, make it part of something else ("Boston Street", "Helsinki
# Cathedral" is still Helsinki; only street types matter here).
_PLACE_PREPOSITIONS = frozenset({"in", "from", "of", "near", "around", "outside", "at", "to"})
_PLACE_MODIFIERS = frozenset({"downtown", "central", "north", "south", "east", "west", "northern",
                              "southern", "eastern", "western", "old", "new", "greater", "inner",
                              "upper", "lower", "midtown", "uptown", "historic", "metro"})
_POSSESSIVE_END = re.compile(r"['’`]s$")
_NO_VALUE = re.compile(r"^\W*(?:unknown|n/?a|none|null|nil|not (?:sure|known|visible|given)|"
                       r"unsure|uncertain|\?+|-+)?\W*$", re.I)

_JSON_KEYS = {
    "street": ("street", "road", "street_name", "main_street", "route", "thoroughfare", "streets"),
    "cross_street": ("cross_street", "cross", "intersection", "crossing", "intersecting_street"),
    "district": ("district", "neighborhood", "neighbourhood", "suburb", "area", "quarter",
                 "borough", "city_district"),
    "city": ("city", "town", "municipality", "locality"),
    "region": ("state", "region", "province", "county", "state_province"),
    "country": ("country", "nation", "country_name"),
    "house_number": ("house_number", "housenumber", "number", "street_number"),
    "address": ("address", "street_address", "full_address", "formatted_address", "location",
                "answer", "prediction", "description", "place", "guess", "best_guess"),
}
_KEY_KIND = {k: kind for kind, keys in _JSON_KEYS.items() for k in keys}
_GUESS_KEYS = frozenset({"guesses", "candidates", "predictions", "options", "alternatives",
                         "possibilities", "locations", "addresses"})


@dataclass
class ParserConfig:
    fuzzy_cutoff: float = option(90.0, "rapidfuzz ratio (0-100) a misspelt name needs to match; "
                                       "above 100 turns fuzzy matching off")
    min_fuzzy_chars: int = option(5, "names and spans shorter than this (letters, no spaces) match "
                                     "only exactly")
    max_chars: int = option(4000, "answers are cut to this many characters")


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
    other_place: str | None = None     # the other city, region or country, as written
    guesses: list[str] = field(default_factory=list)   # this city's streets, one per guess

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Other:
    pos: int            # token index (or text order) of the mention
    name: str           # as written
    kind: str           # "city", "region" or "country"


@dataclass
class _Fields:
    """What one piece of text names, before the answer-level rules (kind, other city) apply."""

    street: Match | None = None
    cross: Match | None = None
    district: str | None = None
    city: str | None = None
    city_in_gazetteer: bool | None = None
    other: _Other | None = None
    house_number: str | None = None
    near: str | None = None
    qualifiers: list[str] = field(default_factory=list)
    has_street_or_district: bool = False
    has_place: bool = False
    alternatives: list[str] = field(default_factory=list)   # streets after "or"
    guesses: list[str] | None = None                        # set by lists


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
        self.own_keys = frozenset(k for index in (self.streets, self.districts, self.cities)
                                  for k in index.exact)
        self.world = world_places()
        self.place = PlaceModel.build(g.city, g.city_aliases, g.region, g.country, self.world)

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
        found = _json_payload(text)
        if found is not None:
            payload, start, end = found
            fields = self._from_json(payload)
            qualifiers.append("json")
            rest = (text[:start] + "\n" + text[end:]).strip()
            if rest:
                self._merge_text(fields, self._from_guesses(rest))
        else:
            fields = self._from_guesses(text)
        refused = bool(_REFUSAL.search(" ".join(t.word for t in _tokens(text))))
        return self._assemble(fields, qualifiers, refused)

    def _assemble(self, f: _Fields, qualifiers: list[str], refused: bool) -> ParsedAnswer:
        out = ParsedAnswer(kind="vague", city=f.city, city_in_gazetteer=f.city_in_gazetteer,
                           house_number=f.house_number, near=f.near,
                           qualifiers=list(dict.fromkeys(qualifiers + f.qualifiers)))
        if f.guesses is not None:
            out.guesses = list(dict.fromkeys(f.guesses))
        if f.other is not None:
            out.kind, out.other_place = "other_city", f.other.name
            out.city, out.city_in_gazetteer = (f.other.name, False) if f.other.kind == "city" \
                else (None, None)
            if f.has_street_or_district:
                out.note = (f"names {f.other.name}, not {self.gazetteer.city}: its streets are not "
                            "this city's")
            return out
        if f.street is not None:
            out.street, out.street_score = f.street.name, f.street.score
            out.cross_street = f.cross.name if f.cross is not None else None
        out.district = f.district
        if f.guesses is None and out.street is not None:
            out.guesses = list(dict.fromkeys([out.street] + f.alternatives))
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
        """The first guess of a list (the first item that names a place); the city may come from
        the text around the list."""
        items, rest = _list_items(text)
        if len(items) < 2:
            return self._from_text(text)
        parsed = [self._from_text(item) for item in items]
        guesses = [f for f, item in zip(parsed, items) if f.has_place or _name_like(item)]
        chosen = guesses[0] if guesses else parsed[0]
        around = self._from_text(rest) if rest.strip() else _Fields()
        if chosen.city is None and chosen.other is None:
            chosen.city, chosen.city_in_gazetteer = around.city, around.city_in_gazetteer
            chosen.other = around.other
        chosen.guesses = [name for f in guesses if f.other is None and not (
            f.city is None and around.other is not None)
            for name in ([f.street.name] if f.street else []) + f.alternatives]
        chosen.qualifiers.append("list")
        return chosen

    def _merge_text(self, f: _Fields, t: _Fields) -> None:
        """Text around a JSON answer: fills what the JSON left out, and may place it elsewhere."""
        if f.other is None and not f.city_in_gazetteer and t.other is not None:
            f.other = t.other
        if f.street is None and t.street is not None:
            f.street, f.cross, f.house_number = t.street, t.cross, f.house_number or t.house_number
        if f.district is None:
            f.district = t.district
        if f.city is None and t.city is not None:
            f.city, f.city_in_gazetteer = t.city, t.city_in_gazetteer
        f.has_street_or_district = f.has_street_or_district or t.has_street_or_district
        f.qualifiers += t.qualifiers
        f.near = f.near or t.near

    # ---- JSON ----------------------------------------------------------------------------------

    def _from_json(self, payload) -> _Fields:
        values: dict[str, list[str]] = {}
        loose: list[str] = []
        guesses: list = []
        _walk_json(payload, values, loose, guesses)
        first = {kind: vals[0] for kind, vals in values.items() if vals}
        if not first:
            if guesses:
                return self._from_guess_objects(guesses)
            return self._from_text(", ".join(loose))
        f = self._from_text(first["address"]) if "address" in first else _Fields()
        if "street" in first:
            sub = self._from_text(first["street"])
            if sub.street is not None:
                f.street, f.house_number = sub.street, sub.house_number or f.house_number
                f.cross = sub.cross or f.cross
            if sub.other is not None:
                f.other = f.other or sub.other
        if "cross_street" in first:
            hits = self.streets.find([t.word for t in tokenize(first["cross_street"])])
            f.cross = hits[0] if hits else f.cross
        if "district" in first:
            hits = self.districts.find([t.word for t in tokenize(first["district"])])
            f.district = hits[0].name if hits else f.district
        if "city" in first and not _NO_VALUE.match(first["city"]):
            hits = self.cities.find([t.word for t in tokenize(first["city"])])
            if hits:
                f.city, f.city_in_gazetteer = self.gazetteer.city, True
                if f.other is not None and f.other.kind == "city":
                    f.other = None
            else:
                f.city, f.city_in_gazetteer = first["city"].split(",")[0].strip(), False
                f.other = _Other(0, f.city, "city")
        for kind in ("region", "country"):
            if kind in first and f.other is None and self._value_elsewhere(first[kind]):
                f.other = _Other(0, first[kind].strip(), kind)
        if "house_number" in first:
            f.house_number = first["house_number"]
        f.has_street_or_district = f.street is not None or f.district is not None
        if f.house_number:
            f.qualifiers.append("house_number")
        names = [v for vals in (values.get("street", [])[1:],) for v in vals]
        alt = [self.streets.find([t.word for t in tokenize(v)]) for v in names]
        f.alternatives = [h[0].name for h in alt if h]
        if guesses:                          # a list of objects: every guess's street, in order
            f.guesses = self._from_guess_objects(guesses).guesses
            f.qualifiers.append("list")
        return f

    def _from_guess_objects(self, guesses: list) -> _Fields:
        parsed = [self._from_json(g) if isinstance(g, (dict, list)) else self._from_text(str(g))
                  for g in guesses]
        chosen = parsed[0]
        chosen.guesses = [f.street.name for f in parsed if f.street is not None and f.other is None]
        chosen.qualifiers.append("list")
        return chosen

    def _value_elsewhere(self, value: str) -> bool:
        """A JSON region / country value that is not this city's."""
        if _NO_VALUE.match(value):
            return False
        key = compact(value)
        places = self.world.get(key) or self.world.codes.get(code_key(value).upper(), ())
        places = tuple(p for p in places if p.kind != "city")
        return self.place.contradicts(key, places)

    # ---- one piece of text ---------------------------------------------------------------------

    def _from_text(self, text: str) -> _Fields:
        tokens = _tokens(text)
        words = [t.word for t in tokens]
        f = _Fields()
        segments = _segments(text, tokens)
        negated = _negated(text, tokens, words)
        if len(segments) > 1 and "?" in text:
            negated |= _retracted(text, tokens, words, segments)
        mixed = _has_mixed_case(text)
        streets_all = _find(self.streets, words, segments)
        seg_start = {lo for lo, _ in segments}
        streets = [m for m in streets_all if m.start not in negated
                   and (not mixed or _street_cased(text, tokens, m, seg_start))]
        districts = [m for m in _find(self.districts, words, segments)
                     if m.start not in negated and (not mixed or _cased(text, tokens[m.start]))
                     and not _inside(m, streets) and not _common_noun(text, tokens, m)]
        if negated and (len(streets) < len(streets_all)):
            f.qualifiers.append("negated")
        f.has_street_or_district = bool(streets or districts)
        if streets:
            self._street_and_cross(text, tokens, words, streets, f)
        if districts:
            f.district = districts[0].name
        own = [m for m in _find(self.cities, words, segments)
               if m.start not in negated and not _inside(m, streets + districts)]
        if own:
            f.city, f.city_in_gazetteer = self.gazetteer.city, True
        others = self._other_places(text, tokens, words, segments, streets_all + districts + own,
                                    negated, mixed)
        if f.alternatives and f.street is not None:
            # "Liberty Ave in Bloomfield or Penn Ave in Garfield": places after the "or" belong to
            # the alternative, not to the answer.
            cut = next((i for i in range(f.street.end, len(words)) if words[i] in ("or", "either")),
                       len(words))
            others = [o for o in others if o.pos < cut]
        if others and f.street is not None and _COMPARISON_FIRST.intersection(words):
            # "Wood Street. The architecture is typical of London": a comparison, not the place,
            # unless the street is compared too ("it resembles Fifth Avenue in New York")
            compared = _scope(text, tokens, words, _COMPARISONS)
            if f.street.start not in compared:
                others = [o for o in others if o.pos not in compared]
        if others:
            first = others[0]
            own_pos = own[0].start if own else 1 << 30
            if first.pos < own_pos or self._attached(text, tokens, others, own + districts):
                f.other = first
        f.has_place = bool(streets or districts or own or others) or any(
            w in STREET_TYPES or w.endswith(_SUFFIXES) for w in words)
        self._cues(text, tokens, words, f)
        return f

    def _street_and_cross(self, text: str, tokens: Sequence[Token], words: list[str],
                          streets: list[Match], f: _Fields) -> None:
        # "Not far from Market Square, on Wood Street": the street after a near cue is a landmark
        # when another street, not joined to it, is the answer.
        if len(streets) > 1 and _after_near_cue(words, streets[0].start) and not _is_connector(
                words[streets[0].end:streets[1].start],
                text[tokens[streets[0].end - 1].end:tokens[streets[1].start].start]):
            streets = streets[1:]
        streets = [streets[0]] + [m for m in streets[1:] if m.name != streets[0].name]
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
                f.alternatives = [m.name for m in streets[1:]]
        number = _house_number(text, tokens, words, first)
        if number is not None:
            f.house_number = number
            f.qualifiers.append("house_number")

    def _other_places(self, text: str, tokens: Sequence[Token], words: list[str],
                      segments: list[tuple[int, int]], taken: list[Match], negated: set[int],
                      mixed: bool) -> list[_Other]:
        """Mentions of a city, region or country that is not this city's, in text order."""
        found: list[_Other] = []
        spans: list[tuple[int, int]] = []
        own_keys = self.own_keys
        hits = [h for h in self.world.find(words) if "".join(words[h[0]:h[1]]) not in own_keys]
        if len(hits) > 1:
            hits.sort(key=lambda h: (h[0] - h[1], h[0]))
        seg_start = {lo for lo, _ in segments}
        seg_end = {hi for _, hi in segments}
        starts = {h[0] for h in hits} | {m.start for m in taken}
        for start, end, places in hits:
            key = "".join(words[start:end])
            if (start in negated
                    or any(start < o.end and o.start < end for o in taken)
                    or any(start < b and a < end for a, b in spans)
                    or any(start < hi and end > hi for _, hi in segments)):
                continue
            if end < len(words) and (words[end] in STREET_TYPES or words[end] in COMPOUND_SUFFIXES):
                continue                                   # "Boston Street", "New York Avenue"
            before = text[tokens[start - 1].end:tokens[start].start] if start else ""
            after = text[tokens[end - 1].end:tokens[end].start] if end < len(tokens) else ""
            first_in_sentence = start in seg_start
            prev = words[start - 1] if start and not first_in_sentence else None
            after_comma = prev is not None and bool(_COMMA_GAP.fullmatch(before))
            after_preposition = prev in _PLACE_PREPOSITIONS
            closes = (end in seg_end or end >= len(words) or after.lstrip().startswith((",", ")"))
                      or _POSSESSIVE_END.search(text[tokens[end - 1].start:tokens[end - 1].end]))
            kinds = {p.kind for p in places}
            if kinds == {"region"} and not any(p.country == "US" for p in places):
                if not (after_comma and closes):          # a subdivision: only as ", Region"
                    continue
            if mixed and not _cased(text, tokens[start]):
                if not (after_preposition and closes):
                    continue
            # Part of a longer proper name ("Rose Fitzgerald Kennedy Greenway") unless after a
            # modifier ("Downtown Boston").
            if (prev is not None and not before.strip() and _cased(text, tokens[start - 1])
                    and prev not in _PLACE_MODIFIERS and not after_preposition):
                continue
            last = tokens[end - 1]
            possessive = bool(_POSSESSIVE_END.search(text[last.start:last.end]))
            if not (after_comma or after_preposition or possessive
                    or (first_in_sentence and closes)):
                continue                                   # no place cue: "Rue de Rivoli"
            if key in COMMON_WORD_PLACES and not ((after_comma or after_preposition) and closes):
                continue                                   # "a Normal street", "Central Helsinki"
            if (end < len(tokens) and not after.strip() and not possessive
                    and _cased(text, tokens[end]) and text[tokens[end].start].isalpha()
                    and end not in starts):
                continue                                   # "Carnegie Mellon University"
            if not self.place.contradicts(key, places):
                spans.append((start, end))                 # the city's own region: no other
                continue
            spans.append((start, end))
            kind = "city" if "city" in kinds else ("region" if "region" in kinds else "country")
            found.append(_Other(start, text[tokens[start].start:tokens[end - 1].end], kind))
        found += self._other_codes(text, tokens, taken, negated, spans)
        return sorted(found, key=lambda o: o.pos)

    def _other_codes(self, text: str, tokens: Sequence[Token], taken: list[Match],
                     negated: set[int], spans: list[tuple[int, int]]) -> list[_Other]:
        """Abbreviations ("TX", "USA", "U.K."): in capitals, after a comma (three letters: anywhere
        in text that uses case)."""
        out = []
        if text.lower() == text:
            return out
        mixed = _has_mixed_case(text)
        starts = [t.start for t in tokens]
        for m in _CODE.finditer(text):
            code = code_key(m.group(1))
            places = self.world.codes.get(code)
            if not places:
                continue
            i = bisect.bisect_left(starts, m.start())
            if i >= len(tokens) or i in negated or any(o.start <= i < o.end for o in taken) or any(
                    a <= i < b for a, b in spans):
                continue
            comma = re.search(r",\s*$", text[max(0, m.start() - 8):m.start()]) is not None
            # three letters elsewhere only as a place: "in the USA.", not "I CAN'T"
            placed = (len(code) >= 3 and mixed and (
                (i > 0 and tokens[i - 1].word in _PLACE_PREPOSITIONS | {"the"})
                or re.match(r"\s*(?:[,.;!?)]|$)", text[m.end():m.end() + 3]) is not None))
            if not (comma or placed):
                continue
            if self.place.contradicts(compact(code), places):
                kind = next(k for k in ("city", "region", "country")
                            if any(p.kind == k for p in places))
                out.append(_Other(i, m.group(1), kind))
        return out

    def _attached(self, text: str, tokens: Sequence[Token], others: list[_Other],
                  own: list[Match]) -> bool:
        """A region / country written right after the city or a district: "Oakland, California"."""
        for o in others:
            if o.kind == "city":
                continue
            for m in own:
                if m.end <= o.pos and _ATTACHED_GAP.fullmatch(
                        text[tokens[m.end - 1].end:tokens[o.pos].start]) and o.pos - m.end == 0:
                    return True
        return False

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


_SUFFIXES = tuple(COMPOUND_SUFFIXES)


# ---- helpers ---------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _tokens(text: str) -> tuple[Token, ...]:
    """``tokenize`` memoised: one parse reads the same text for its fields and for refusals, and
    a list's items again for the whole answer (tokens are immutable, so sharing them is safe)."""
    return tuple(tokenize(text))


def _find(index: NameIndex, words: list[str], segments: list[tuple[int, int]]) -> list[Match]:
    """``index.find`` within each sentence, so no name spans a sentence end."""
    hits = index.find(words)
    if len(segments) == 1:
        return hits
    ends = {hi for _, hi in segments[:-1]}
    if not any(m.start < e < m.end for m in hits for e in ends):
        return hits                   # the common case: no hit spans a sentence end
    hits = []
    for lo, hi in segments:
        hits += [Match(m.start + lo, m.end + lo, m.name, m.score, m.chars)
                 for m in index.find(words[lo:hi])]
    return hits


def _segments(text: str, tokens: Sequence[Token]) -> list[tuple[int, int]]:
    """Token ranges of the sentences: a break is a newline, ";", "!", "?" or a dot, except the dot
    right after an abbreviation ("St.", "Ave.", "E.")."""
    if not _SENTENCE_BREAK.search(text):
        return [(0, len(tokens))]
    cuts = [0]
    for i in range(1, len(tokens)):
        gap = text[tokens[i - 1].end:tokens[i].start]
        if not gap or not _SENTENCE_BREAK.search(gap):
            continue
        if "\n" in gap and not _STOP.search(gap):
            # a wrapped line ("... might be Grant\nStreet, ...") goes on; a blank line or markup
            # ("\n**District:**") starts anew
            if "\n\n" in gap or gap.strip(" \t\r\n-"):
                cuts.append(i)
            continue
        if not _HARD_BREAK.search(gap) and gap.lstrip(" \t").startswith(".") and \
                _is_abbreviation(text, tokens[i - 1]):
            continue
        cuts.append(i)
    cuts.append(len(tokens))
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a] or [(0, len(tokens))]


def _is_abbreviation(text: str, token: Token) -> bool:
    raw = text[token.start:token.end]
    return len(raw) == 1 or raw.lower() in ABBREVIATIONS or raw.lower() in ("no", "nr", "mr", "mrs")


def _negated(text: str, tokens: Sequence[Token], words: list[str]) -> set[int]:
    """Token indices in a negation's scope (from the negator to a comma, sentence end, "but")."""
    if not _NEGATOR_FIRST.intersection(words):
        return set()
    return _scope(text, tokens, words, _NEGATORS)


def _scope(text: str, tokens: Sequence[Token], words: list[str], cues) -> set[int]:
    """Token indices from each cue to the end of its scope (a comma, sentence end, "but")."""
    out: set[int] = set()
    n = len(words)
    first = {c[0] for c in cues}
    for i, w in enumerate(words):
        if w not in first:
            continue
        length = next((len(c) for c in cues if tuple(words[i:i + len(c)]) == c), 0)
        if not length:
            continue
        j = i + length
        if w == "not" and j < n and words[j] in _NOT_NEGATING:
            continue
        while j < n:
            if _SCOPE_END_CHARS.search(text[tokens[j - 1].end:tokens[j].start]) or (
                    words[j] in _SCOPE_ENDS and j > i + length):
                break
            out.add(j)
            j += 1
    return out


def _name_like(item: str) -> bool:
    """A list item that reads as a name ("Broadway", "Strøget"): a capitalised word."""
    return any(w[:1].isupper() for w in re.findall(r"[^\W\d_]+", item))


def _has_mixed_case(text: str) -> bool:
    return text.lower() != text and text.upper() != text


def _cased(text: str, token: Token) -> bool:
    """The word starts with a capital (or a digit)."""
    first = text[token.start:token.start + 1]
    return first.isupper() or not first.isalpha()


def _street_cased(text: str, tokens: Sequence[Token], m: Match, seg_start: set[int]) -> bool:
    """A name of one word always counts; one of several needs a capital (or a digit), and when its
    only capital is the sentence's first letter, the name must not have more ("Hakaniemen
    torikatu" is a name, "Main street vibes" with "Main Street" in the gazetteer is not): so
    "main street" and "market square" in prose are common phrases."""
    if m.end - m.start == 1:
        return True
    cased = [k for k in range(m.start, m.end) if _cased(text, tokens[k])]
    if not cased:
        return False
    if any(not text[tokens[k].start].isalpha() for k in cased):
        return True                                    # "5th avenue"
    if len(cased) == 1 and cased[0] in seg_start:
        return _capitals(m.name) <= 1
    return True


@lru_cache(maxsize=4096)
def _capitals(name: str) -> int:
    return sum(w[:1].isupper() for w in re.split(r"[\s-]+", name))


def _common_noun(text: str, tokens: Sequence[Token], m: Match) -> bool:
    """A district name used as a word: "a downtown area", or part of a street not in the
    gazetteer ("Oakland Avenue")."""
    return (m.start > 0 and text[tokens[m.start - 1].start:tokens[m.start - 1].end].lower() in (
        "a", "an")) or (m.end < len(tokens) and tokens[m.end].word in STREET_TYPES)


def _after_near_cue(words: list[str], i: int) -> bool:
    return any(tuple(words[max(0, i - len(cue)):i]) == cue for cue in _NEAR_CUES)


def _retracted(text: str, tokens: Sequence[Token], words: list[str],
               segments: list[tuple[int, int]]) -> set[int]:
    """Tokens of a question the answer then denies: "Penn Avenue? No, Liberty Avenue"."""
    out: set[int] = set()
    for (lo, hi), (nlo, _) in zip(segments, segments[1:]):
        if words[nlo] in ("no", "nope") and "?" in text[tokens[hi - 1].end:tokens[nlo].start]:
            out.update(range(lo, hi))
    return out


def _inside(m: Match, others: list[Match]) -> bool:
    """``m`` lies within a strictly longer match of another category."""
    return any(o.start <= m.start and m.end <= o.end and o.end - o.start > m.end - m.start
               for o in others)


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


def _list_items(text: str) -> tuple[list[str], str]:
    """Items of a numbered or bulleted list (one per line, or inline "1. ... 2. ...") and the text
    around them; ([], text) when there is no list."""
    lines = list(_LIST_LINE.finditer(text))
    if len(lines) >= 2 and sum(bool(_FIELD_LINE.match(m.group(1))) for m in lines) * 2 > len(lines):
        return [], text              # "* **City:** ...", "- Street: ...": fields, not guesses
    if len(lines) >= 2:
        rest = _LIST_LINE.sub("", text)
        return [m.group(1) for m in lines], rest
    marks = list(_INLINE_NUMBER.finditer(text))
    numbers = [int(m.group(1)) for m in marks]
    if len(marks) >= 2 and numbers == list(range(1, len(marks) + 1)):
        ends = [m.start() for m in marks[1:]] + [len(text)]
        return [text[m.end():e] for m, e in zip(marks, ends)], text[:marks[0].start()]
    return [], text


def _json_key(key) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def _scalar(v) -> str | None:
    if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip():
        return str(v)
    return None


def _walk_json(value, values: dict[str, list[str]], loose: list[str], guesses: list,
               depth: int = 0) -> None:
    """Collect the values of known keys at any depth (first occurrence first), the other scalar
    values, and lists of guesses (a list of objects, or the list under a key like "guesses")."""
    if depth > 20:
        return
    if isinstance(value, list):
        items = [v for v in value if v not in (None, "", [], {})]
        if items and isinstance(items[0], dict):
            if not guesses:
                guesses.extend(items)
            _walk_json(items[0], values, loose, guesses, depth + 1)
        else:
            for v in items:
                s = _scalar(v)
                if s is not None:
                    loose.append(s)
        return
    if not isinstance(value, dict):
        s = _scalar(value)
        if s is not None:
            loose.append(s)
        return
    for k, v in value.items():
        key = _json_key(k)
        kind = _KEY_KIND.get(key)
        if isinstance(v, dict):
            _walk_json(v, values, loose, guesses, depth + 1)
        elif isinstance(v, list):
            scalars = [s for s in map(_scalar, v) if s is not None]
            if kind is not None and scalars:
                values.setdefault(kind, []).extend(scalars)
            elif key in _GUESS_KEYS or any(isinstance(x, dict) for x in v):
                _walk_json(v, values, loose, guesses, depth + 1)
            else:
                loose.extend(scalars)
        else:
            s = _scalar(v)
            if s is None:
                continue
            if kind is not None:
                values.setdefault(kind, []).append(s)
            else:
                loose.append(s)


def _json_payload(text: str) -> tuple[dict | list | str, int, int] | None:
    """The JSON value an answer holds (an object, a list, or a string guess) and its span."""
    if "{" not in text and "[" not in text:
        return None
    candidates = []
    fenced = _FENCE.search(text)
    if fenced:
        candidates.append((fenced.group(1), fenced.start(), fenced.end()))
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    start = min(starts)
    end = max(text.rfind("}"), text.rfind("]"))
    if end > start:
        candidates.append((text[start:end + 1], start, end + 1))
    for cand, lo, hi in candidates:
        cand = cand.strip()
        if not cand or len(cand) > _JSON_MAX_CHARS or cand[0] not in "{[":
            continue
        try:
            value = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, list):
            if any(isinstance(v, dict) and v for v in value):
                return value, lo, hi
            value = next((v for v in value if isinstance(v, str) and v), None)
        if isinstance(value, dict) and value:
            return value, lo, hi
        if isinstance(value, str):
            return value, lo, hi
    return None
