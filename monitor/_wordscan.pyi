"""Word passes in C for matching, seed similarity, language detection and content hashes
(built from _wordscan.c; optional)."""

from collections.abc import Iterable, Mapping, Sequence

class Scanner:
    def __init__(
        self, keys: Iterable[str], continuations: Mapping[str, Iterable[str]] | None = None
    ) -> None: ...
    def spans(self, text: str, /) -> list[int]: ...

class TermCounter:
    def __init__(self, stopwords: Iterable[str]) -> None: ...
    def counts(self, text: str, /) -> dict[str, int] | None: ...

class WordTally:
    def __init__(self, first: Iterable[str], second: Iterable[str]) -> None: ...
    def tally(self, text: str, /) -> tuple[int, int, int] | None: ...

class SeedScorer:
    def __init__(
        self,
        stopwords: Iterable[str],
        terms: Sequence[str],
        idf: Sequence[float],
        postings: Sequence[Sequence[tuple[int, float]]],
        unseen_idf: float,
        seeds: int,
    ) -> None: ...
    def similarities(self, text: str, /) -> list[float] | None: ...

def hash_form(text: str, /) -> str | None: ...
