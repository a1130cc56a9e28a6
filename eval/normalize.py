"""Text normalisation shared by gazetteer names and free-text answers, so both sides compare equal.

A string becomes a list of :class:`Tokens` (word, start, end): the words are normalised, the offsets
point back into the original text (the parser needs them for casing, house numbers and raw phrases).
Steps, applied to each word of the original text:

1. Unicode compatibility decomposition, accents dropped, case folded ("Töölönlahdenkatu" ->
   "toolonlahdenkatu", "Straße" -> "strasse"); a possessive "'s" is dropped ("New York's" ->
   "new york", "Smith's" -> "smith"), other apostrophes inside a word are removed ("can't" ->
   "cant"); every other non-alphanumeric character separates words, except
   ``&``, ``@`` and ``/``, which read as "and", "at" and "and" (``Grant St/5th Ave``).
2. Ordinals become words: "5th" -> "fifth", "11th" -> "eleventh", "21st" -> "twenty first".
3. Street-type and direction abbreviations are expanded: St -> street, Ave -> avenue, N -> north...
   (St as "Saint" is expanded the same way on both sides, so matching stays consistent.)
4. Finnish street words in another case become the nominative names use ("Aleksanterinkadulla",
   "Mannerheimintien" -> "aleksanterinkatu", "mannerheimintie").
5. Compound street suffixes written apart are joined to the word before them:
   "Aleksanterin katu" -> "aleksanterinkatu", "Yrjö-Koskisen katu" -> "yrjo koskisenkatu"
   (Finnish -katu/-tie/-kuja..., Swedish -gatan/-vägen..., German -strasse/-weg...).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

_WORD = re.compile(r"[^\W_]+(?:['’`][^\W_]+)*|[&@/]")
_APOSTROPHES = str.maketrans("", "", "'’`")
_POSSESSIVE = re.compile(r"\w['’`]s$")
_SYMBOLS = {"&": "and", "@": "at", "/": "and"}

ABBREVIATIONS = {
    "st": "street", "str": "street", "ave": "avenue", "av": "avenue", "rd": "road",
    "blvd": "boulevard", "dr": "drive", "ln": "lane", "pl": "place", "sq": "square", "ct": "court",
    "hwy": "highway", "pkwy": "parkway", "ter": "terrace", "cir": "circle", "trl": "trail",
    "mt": "mount", "ft": "fort", "n": "north", "s": "south", "e": "east", "w": "west",
    "ne": "northeast", "nw": "northwest", "se": "southeast", "sw": "southwest",
}

# Street-type words: what is left of a name without them is its distinctive "core".
STREET_TYPES = frozenset({
    "street", "avenue", "road", "boulevard", "drive", "lane", "place", "square", "court", "highway",
    "parkway", "terrace", "circle", "trail", "way", "plaza", "alley", "row", "mall", "bridge",
})

# Suffixes that Finnish, Swedish and German street names attach to the word before them.
COMPOUND_SUFFIXES = frozenset({
    "katu", "tie", "kuja", "tori", "ranta", "aukio", "polku", "puistikko", "puisto", "silta",
    "penger", "kaari", "rinne", "karki", "vayla", "raitti", "tanhua", "esplanadi", "kaytava",
    "gatan", "vagen", "torget", "kajen", "esplanaden", "strasse", "weg", "platz", "allee", "gasse",
})
_SUFFIX_AT_END = re.compile("(?:" + "|".join(sorted(COMPOUND_SUFFIXES, key=len, reverse=True))
                            + ")$")
# Words a compound suffix never joins to (they are not the first half of a street name).
_NO_JOIN = frozenset({"the", "a", "an", "of", "in", "on", "at", "and", "or", "to", "near", "by"})

_UNITS = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
          "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINAL_UNITS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                  "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_ORDINAL = re.compile(r"^(\d{1,3})(st|nd|rd|th)$")
_JOINABLE_GAP = re.compile(r"[ \-]{1,3}")
_PIECE = re.compile(r"[^\W_]+")


# Finnish street words in the cases answers use ("on the street": -kadulla, "of": -kadun), folded.
_FINNISH_CASE = re.compile(
    r"^(\w*?)(kadu(?:lla|lle|lta|ssa|sta|n|t)|katua|tie(?:lla|lle|lta|ssa|sta|n|ta)"
    r"|tori(?:lla|lle|lta|ssa|sta|n)|rann(?:alla|alle|alta|assa|asta|an)"
    r"|aukio(?:lla|lle|lta|n|ta)|kuja(?:lla|lle|lta|n)|esplanadi(?:lla|lle|lta|n)"
    r"|bulevardi(?:lla|lle|lta|n))$")
_FINNISH_STEMS = (("kadu", "katu"), ("katua", "katu"), ("tie", "tie"), ("tori", "tori"),
                  ("rann", "ranta"), ("aukio", "aukio"), ("kuja", "kuja"),
                  ("esplanadi", "esplanadi"), ("bulevardi", "bulevardi"))


class Token(NamedTuple):
    word: str    # normalised
    start: int   # offsets into the original text
    end: int


def _cardinal_words(n: int) -> list[str]:
    if n < 20:
        return [_UNITS[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_UNITS[n % 10]] if n % 10 else [])
    rest = _cardinal_words(n % 100) if n % 100 else []
    return [_UNITS[n // 100], "hundred"] + rest


def ordinal_words(n: int) -> list[str]:
    """``21`` -> ``["twenty", "first"]``; the last word takes the ordinal form."""
    words = _cardinal_words(n)
    last = words[-1]
    if last in _ORDINAL_UNITS:
        words[-1] = _ORDINAL_UNITS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return words


def fold(text: str) -> str:
    """Accents dropped and case folded; the character-level part of normalisation."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@lru_cache(maxsize=1 << 16)
def _expand(raw: str) -> tuple[str, ...]:
    """The normalised word(s) one word of text becomes (memoised: answers repeat their words)."""
    if raw in _SYMBOLS:
        return (_SYMBOLS[raw],)
    word = fold(raw)
    if _POSSESSIVE.search(word):           # "New York's" -> "new york"
        word = word[:-2]
    word = word.translate(_APOSTROPHES)
    # Folding can reveal separators (e.g. a ligature or full-width punctuation): split again.
    pieces = _PIECE.findall(word)
    out: list[str] = []
    for piece in pieces:
        m = _ORDINAL.match(piece)
        if m and int(m.group(1)) > 0:
            out.extend(ordinal_words(int(m.group(1))))
        else:
            out.append(ABBREVIATIONS.get(piece, piece))
    return tuple(_finnish_nominative(w) for w in out)


def _finnish_nominative(word: str) -> str:
    """A street word in a Finnish case back in the nominative the names use: "Aleksanterinkadulla"
    -> "aleksanterinkatu", "Mannerheimintiellä" -> "mannerheimintie" (both sides, so consistent)."""
    m = _FINNISH_CASE.match(word)
    if m is None:
        return word
    stem = m.group(2)
    for head, nominative in _FINNISH_STEMS:
        if stem.startswith(head):
            return m.group(1) + nominative
    return word


def tokenize(text: str) -> list[Token]:
    """Normalised words of ``text`` with their character offsets in ``text``."""
    tokens: list[Token] = []
    for m in _WORD.finditer(text):
        for word in _expand(m.group()):
            prev = tokens[-1] if tokens else None
            if (word in COMPOUND_SUFFIXES and prev is not None and prev.word.isalpha()
                    and prev.word not in _NO_JOIN and prev.word not in COMPOUND_SUFFIXES
                    and _JOINABLE_GAP.fullmatch(text[prev.end:m.start()])):
                tokens[-1] = Token(prev.word + word, prev.start, m.end())
            else:
                tokens.append(Token(word, m.start(), m.end()))
    return tokens


def core(words: list[str]) -> str:
    """The distinctive part of a name: its compact form without a trailing street type or compound
    suffix ("grant street" -> "grant", "aleksanterinkatu" -> "aleksanterin")."""
    if len(words) > 1 and words[-1] in STREET_TYPES:
        words = words[:-1]
    key = "".join(words)
    m = _SUFFIX_AT_END.search(key)
    return key[:m.start()] if m and m.start() > 2 else key


def normalize(text: str) -> str:
    """The normalised words joined by single spaces (the form names are compared in)."""
    return " ".join(t.word for t in tokenize(text))


def compact(text: str) -> str:
    """Normalised with no spaces: the key exact matching uses, so spacing never matters."""
    return "".join(t.word for t in tokenize(text))
