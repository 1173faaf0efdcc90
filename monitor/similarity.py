"""TF-IDF similarity of an item to the nearest seed document (a small sparse implementation).

Where the optional compiled module was built (`monitor._wordscan`), an ASCII item is compared
with the seeds in C (`SeedScorer`): the same floats, bit for bit, as the Python path here, which
stays the reference. Otherwise its terms are still counted in C (`TermCounter`), with the same
counts in the same order as `_terms`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, compress, repeat
from operator import mul
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError

_WORD = re.compile(r"[^\W\d_]{3,}")

#: Function words that carry no topic; the seed corpus is small, so idf alone cannot mute them.
_STOPWORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "although",
        "among",
        "and",
        "any",
        "are",
        "because",
        "been",
        "before",
        "being",
        "between",
        "both",
        "but",
        "can",
        "cannot",
        "could",
        "did",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "even",
        "every",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "however",
        "into",
        "its",
        "itself",
        "just",
        "least",
        "less",
        "let",
        "like",
        "made",
        "make",
        "many",
        "may",
        "more",
        "most",
        "much",
        "must",
        "nor",
        "not",
        "now",
        "off",
        "once",
        "only",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "since",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "thus",
        "too",
        "under",
        "until",
        "upon",
        "very",
        "was",
        "way",
        "well",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "yet",
        "you",
        "your",
        "said",
        "says",
        "one",
        "two",
        "new",
    ]
)


#: The compiled term counter, or None where the module was not built.
_COUNTER: _wordscan.TermCounter | None
try:
    from monitor import _wordscan
except ImportError:  # installed without a C compiler: the Python path
    _COUNTER = None
    _COMPILED = False
else:
    _COUNTER = _wordscan.TermCounter(sorted(_STOPWORDS))
    _COMPILED = True


def _query_terms(text: str) -> Mapping[str, int]:
    """`_terms(text)`, counted in C where the compiled module was built and the text is ASCII."""
    counts = _COUNTER.counts(text) if _COUNTER is not None else None
    return _terms(text) if counts is None else counts


def _terms(text: str) -> Counter[str]:
    """Each word's term (lower case, singular, no stopwords), counted in order of first use."""
    return Counter(chain.from_iterable(map(_run_terms, text.split())))


@lru_cache(maxsize=131_072)
def _run_terms(run: str) -> tuple[str, ...]:
    """The terms of a run of non-whitespace, in order: `_WORD` never matches whitespace, so a
    text's words are its runs' words (and a run seen before costs one lookup)."""
    return tuple(t for t in map(_term, _WORD.findall(run)) if t)


@lru_cache(maxsize=131_072)
def _term(word: str) -> str:
    """One word's term, or "" for a stopword."""
    low = word.lower()
    return "" if low in _STOPWORDS else _singular(low)


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _weights(
    counts: Mapping[str, int], idf: Mapping[str, float], unseen: float
) -> dict[str, float]:
    vec = {t: _tf(n) * idf.get(t, unseen) for t, n in counts.items()}
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {t: v / norm for t, v in vec.items()} if norm else {}


@lru_cache(maxsize=1024)
def _tf(count: int) -> float:
    """Sublinear term frequency."""
    return 1.0 + math.log(count)


@dataclass(frozen=True, slots=True)
class SeedIndex:
    """TF-IDF vectors (sublinear tf, smoothed idf, L2-normalised) of the seed documents."""

    names: tuple[str, ...]
    vectors: tuple[Mapping[str, float], ...]
    idf: Mapping[str, float]
    #: idf given to a word no seed document contains.
    unseen_idf: float
    #: Each term's (seed number, weight) for the seeds holding it: `similarities` then costs one
    #: lookup per query term, not one per term and seed.
    postings: Mapping[str, tuple[tuple[int, float], ...]] = field(
        init=False, repr=False, compare=False
    )
    #: The same comparison in C for ASCII text, where the compiled module was built.
    scorer: _wordscan.SeedScorer | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        postings: dict[str, list[tuple[int, float]]] = {}
        for number, vec in enumerate(self.vectors):
            for term, weight in vec.items():
                postings.setdefault(term, []).append((number, weight))
        object.__setattr__(self, "postings", {t: tuple(p) for t, p in postings.items()})
        object.__setattr__(self, "scorer", self._compiled_scorer() if _COMPILED else None)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its fields given to the constructor (a parse worker receives the
        parent's matcher): the postings and the compiled scorer are rebuilt where loaded."""
        return (SeedIndex, (self.names, self.vectors, self.idf, self.unseen_idf))

    def _compiled_scorer(self) -> _wordscan.SeedScorer:
        """`similarities` for ASCII text in C. An ASCII text has only ASCII terms, so the
        others are left out (`_wordscan.SeedScorer`)."""
        terms = [t for t in self.idf if t.isascii()]
        return _wordscan.SeedScorer(
            sorted(_STOPWORDS),
            terms,
            [self.idf[t] for t in terms],
            [self.postings.get(t, ()) for t in terms],
            self.unseen_idf,
            len(self.names),
        )

    @classmethod
    def build(cls, documents: Mapping[str, str]) -> SeedIndex:
        """Index named texts (name -> text)."""
        counts = {name: _terms(text) for name, text in documents.items()}
        n = len(counts)
        df: Counter[str] = Counter()
        for c in counts.values():
            df.update(c.keys())
        idf = {t: math.log((1 + n) / (1 + d)) + 1.0 for t, d in df.items()}
        unseen = math.log(1 + n) + 1.0
        names = tuple(counts)
        vectors = tuple(_weights(counts[name], idf, unseen) for name in names)
        return cls(names=names, vectors=vectors, idf=idf, unseen_idf=unseen)

    def similarities(self, text: str) -> tuple[tuple[str, float], ...]:
        """Cosine similarity of `text` to every seed document, in index order."""
        compiled = self.scorer.similarities(text) if self.scorer is not None else None
        if compiled is not None:
            return tuple(zip(self.names, compiled, strict=True))
        return self._similarities(text)

    def _similarities(self, text: str) -> tuple[tuple[str, float], ...]:
        """`similarities` in Python (the reference for the compiled scorer)."""
        counts = _query_terms(text)
        # The query's weights as `_weights` computes them, but normalised only for the terms
        # some seed holds (the others count in the norm alone): the same floats, bit for bit.
        vec = list(
            map(mul, map(_tf, counts.values()), map(self.idf.get, counts, repeat(self.unseen_idf)))
        )
        norm = math.sqrt(sum(map(mul, vec, vec)))
        # Each seed's products in query order, as a sum over every query term adds them; the
        # terms a seed lacks would add exactly 0.0, so leaving them out changes no bit.
        products: list[list[float]] = [[] for _ in self.names]
        if norm:
            postings = self.postings
            held = map(postings.__contains__, counts)
            for term, v in compress(zip(counts, vec, strict=True), held):
                for number, weight in postings[term]:
                    products[number].append(v / norm * weight)
        return tuple((name, sum(p, 0.0)) for name, p in zip(self.names, products, strict=True))

    def nearest(self, text: str) -> tuple[str | None, float]:
        """The closest seed document's name and its cosine similarity (None, 0.0 when empty)."""
        best: tuple[str | None, float] = (None, 0.0)
        for name, sim in self.similarities(text):
            if sim > best[1]:
                best = (name, sim)
        return best[0], round(best[1], 4)


def load_seed_index(corpus_dir: Path) -> SeedIndex:
    """Build the index from every `*.txt` file of the corpus directory (named by file stem)."""
    if not corpus_dir.is_dir():
        raise ConfigError(f"{corpus_dir}: seed corpus directory not found")
    documents: dict[str, str] = {}
    for path in sorted(corpus_dir.glob("*.txt")):
        try:
            documents[path.stem] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read seed document: {e}") from e
    if not documents:
        raise ConfigError(f"{corpus_dir}: no .txt seed documents")
    return SeedIndex.build(documents)
