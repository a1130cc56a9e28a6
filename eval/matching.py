"""Find the names of one category (streets, districts, cities...) in a normalised token list.

Built once per name list, used for every answer (the tables are the expensive part):

- exact: a dict from each name's *compact* key (normalised, spaces removed) to the name, probed with
  the compact form of every token span up to the longest name, so "Aleksanterin katu",
  "Aleksanterinkatu" and "GrantStreet" all hit;
- fuzzy: spans that are not exact hits are scored against every compact key in one
  ``rapidfuzz.process.cdist`` call (``fuzz.ratio``, a 0-100 normalised Indel similarity); the best
  key is kept when the span reaches the cut-off *and so does its distinctive core* (the name
  without its street type or compound suffix, :func:`eval.normalize.core`; when the span's own
  suffix is misspelt, its letters before the name's suffix length): "Grand Street" is as close to
  "Grant Street" as a typo, but "grand" is not "grant", while "Aleksanterinktau" keeps its core.
  Names whose core is shorter than ``min_fuzzy_chars`` match only exactly, and spans may not
  begin or end with a function word or
  begin with a number, so short common words never match a name by accident.

Speed (``benchmarks/bench_qa_parse.py``): the exact probe stops as soon as a span is no prefix of
any key; fuzzy spans too short or too long to reach the cut-off against any key are never scored;
and each index remembers the best name of every span key it has scored (answers repeat their
phrases), so ``cdist`` sees only new spans. None of this changes a result.

Overlapping hits are resolved greedily: the longest span (in characters) wins, then the higher
score, then the earlier position.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from eval.normalize import compact, core, tokenize

# Function words that never begin or end a fuzzy span (a name is not "the grant street in").
FUNCTION_WORDS = frozenset({
    "the", "a", "an", "of", "in", "on", "at", "and", "or", "to", "near", "by", "is", "was", "be",
    "this", "that", "it", "its", "with", "from", "for", "as", "might", "may", "could", "photo",
    "taken", "possibly", "probably", "likely", "located", "address",
})


# Span keys whose best fuzzy name is remembered per index (cleared when full; ~100 bytes each).
_FUZZY_CACHE_SIZE = 200_000
_UNSEEN = object()


@dataclass(frozen=True)
class Match:
    start: int       # first token index
    end: int         # one past the last token index
    name: str        # canonical name
    score: float     # 100 for an exact hit
    chars: int       # length of the matched span's compact key (the "longest" in preferences)

    def overlaps(self, other: Match) -> bool:
        return self.start < other.end and other.start < self.end


class NameIndex:
    """Exact and fuzzy lookup of a fixed set of names (aliases map to their canonical name)."""

    def __init__(self, names: Iterable[tuple[str, str]], *, fuzzy_cutoff: float,
                 min_fuzzy_chars: int):
        """``names``: (surface form, canonical name) pairs; the first canonical name of a key wins."""
        self.exact: dict[str, str] = {}
        cores: dict[str, str] = {}
        max_words = 1
        for surface, canonical in names:
            words = [t.word for t in tokenize(surface)]
            key = "".join(words)
            if key and key not in self.exact:
                self.exact[key] = canonical
                cores[key] = core(words)
                max_words = max(max_words, len(words))
        self.fuzzy_cutoff = float(fuzzy_cutoff)
        self.min_fuzzy_chars = int(min_fuzzy_chars)
        # A name written with every compound split or every abbreviation spelled out spans at most a
        # few more tokens than its own word count.
        self.max_span = max_words + 2
        self.max_key_chars = max((len(k) for k in self.exact), default=0)
        # Every leading part of every key: a span whose key is not in here cannot grow into a name,
        # so the exact probe stops after one dict lookup at most word positions.
        self.prefixes = frozenset(k[:i] for k in self.exact for i in range(1, len(k) + 1))
        self.fuzzy_keys = [k for k in self.exact if len(cores[k]) >= self.min_fuzzy_chars]
        self.fuzzy_names = [self.exact[k] for k in self.fuzzy_keys]
        self.fuzzy_cores = [cores[k] for k in self.fuzzy_keys]
        self._fuzzy_cache: dict[str, tuple[int, float] | None] = {}
        # ratio = 2m / (a + b) <= 2a / (a + b): spans longer than this cannot reach the cut-off.
        slack = 200.0 / max(self.fuzzy_cutoff, 1.0) - 1.0
        self.max_fuzzy_chars = int(self.max_key_chars * slack) + 1
        # ... and spans shorter than the shortest key / slack cannot either (nor, by design, spans
        # shorter than min_fuzzy_chars).
        shortest_key = min((len(k) for k in self.fuzzy_keys), default=0)
        self.min_span_chars = max(self.min_fuzzy_chars, math.ceil(shortest_key / slack) - 1
                                  if slack > 0 else self.min_fuzzy_chars)

    def __len__(self) -> int:
        return len(self.exact)

    def find(self, words: Sequence[str]) -> list[Match]:
        """Non-overlapping hits in ``words``, in text order."""
        hits = self._exact_hits(words)
        if self.fuzzy_keys and self.fuzzy_cutoff <= 100:
            hits += self._fuzzy_hits(words, hits)
        return resolve_overlaps(hits)

    def lookup(self, text: str) -> str | None:
        """The name ``text`` denotes on its own (exact, else best fuzzy), or None."""
        key = compact(text)
        if not key:
            return None
        if key in self.exact:
            return self.exact[key]
        if len(key) < self.min_fuzzy_chars or not self.fuzzy_keys:
            return None
        best = process.extractOne(key, self.fuzzy_keys, scorer=fuzz.ratio,
                                  score_cutoff=self.fuzzy_cutoff)
        if best is None or not self._core_close(core([t.word for t in tokenize(text)]), best[2]):
            return None
        return self.fuzzy_names[best[2]]

    def _aligned_core(self, span_key: str, k: int) -> str:
        """The span without as many trailing letters as the name's suffix has: the core of a span
        whose suffix is itself misspelt ("Aleksanterinktau", "Mannerheimintei")."""
        suffix = len(self.fuzzy_keys[k]) - len(self.fuzzy_cores[k])
        return span_key[:len(span_key) - suffix] if suffix else span_key

    def _core_close(self, span_core: str, k: int) -> bool:
        return fuzz.ratio(span_core, self.fuzzy_cores[k]) >= self.fuzzy_cutoff

    def _exact_hits(self, words: Sequence[str]) -> list[Match]:
        hits = []
        n, max_span = len(words), self.max_span
        exact, prefixes = self.exact, self.prefixes
        for i in range(n):
            key = words[i]
            j = i
            while key in prefixes:                # else no longer span can be a name either
                name = exact.get(key)
                if name is not None:
                    hits.append(Match(i, j + 1, name, 100.0, len(key)))
                j += 1
                if j >= n or j - i >= max_span:
                    break
                key += words[j]
        return hits

    def _fuzzy_hits(self, words: Sequence[str], exact: list[Match]) -> list[Match]:
        spans = self._fuzzy_spans(words, exact)
        if not spans:
            return []
        best = self._best_keys(list(spans))
        hits = []
        for key, where in spans.items():
            found = best[key]
            if found is None:
                continue
            k, score = found
            start, end = where[0]
            if not (self._core_close(core(list(words[start:end])), k)
                    or self._core_close(self._aligned_core(key, k), k)):
                continue
            hits += [Match(start, end, self.fuzzy_names[k], score, len(key)) for start, end in where]
        return hits

    def _best_keys(self, spans: list[str]) -> dict[str, tuple[int, float] | None]:
        """Per span key, the closest name key (index, score) if it reaches the cut-off, else None.

        Results are memoised per index: the score depends on the span key alone, and answers repeat
        their phrases ("the address of this photo might be ..."), so most spans are seen before.
        """
        cache, found, new = self._fuzzy_cache, {}, []
        for key in spans:
            known = cache.get(key, _UNSEEN)
            if known is _UNSEEN:
                new.append(key)
            else:
                found[key] = known
        if new:
            if len(cache) + len(new) > _FUZZY_CACHE_SIZE:
                cache.clear()
            scores = process.cdist(new, self.fuzzy_keys, scorer=fuzz.ratio,
                                   score_cutoff=self.fuzzy_cutoff, workers=1)
            best = scores.argmax(axis=1)
            best_score = scores[np.arange(len(new)), best]
            for key, k, score in zip(new, best.tolist(), best_score.tolist()):
                found[key] = cache[key] = (k, score) if score >= self.fuzzy_cutoff else None
        return found

    def _fuzzy_spans(self, words: Sequence[str], exact: list[Match]) -> dict[str, list[tuple[int, int]]]:
        """Compact key -> (start, end) of every span that could reach the cut-off against some
        name: not overlapping an exact hit, not starting with a number or a function word, not
        ending with a function word, and of a length some key is close enough to."""
        taken = {k for m in exact for k in range(m.start, m.end)}   # a set: cheap per-word probes
        spans: dict[str, list[tuple[int, int]]] = {}
        n, max_span = len(words), self.max_span
        longest, shortest = self.max_fuzzy_chars, self.min_span_chars
        for i in range(n):
            first = words[i]
            if i in taken or first in FUNCTION_WORDS or first.isdigit():
                continue
            key = ""
            for j in range(i, min(n, i + max_span)):
                if j in taken:
                    break
                word = words[j]
                key += word
                if len(key) > longest:
                    break
                if len(key) >= shortest and word not in FUNCTION_WORDS:
                    spans.setdefault(key, []).append((i, j + 1))
        return spans


def resolve_overlaps(hits: list[Match]) -> list[Match]:
    """Greedy: longest span first, then best score, then earliest; returned in text order."""
    chosen: list[Match] = []
    for m in sorted(hits, key=lambda h: (-h.chars, -h.score, h.start)):
        if not any(m.overlaps(c) for c in chosen):
            chosen.append(m)
    return sorted(chosen, key=lambda h: h.start)
