"""Story shingles hashed in C (built from _shinglehash.c; optional)."""

from collections.abc import Iterable

class Hasher:
    def __init__(self, stopwords: Iterable[str], stem_chars: int) -> None: ...
    def story(self, title: str, summary: str, /) -> bytes | None: ...

def word_hashes(text: str, /) -> bytes: ...

# hashes: a contiguous buffer of 32- or 64-bit integers, or a list or tuple of bytes (each
# node's packed 32-bit hashes); out: a contiguous buffer of int32 (numpy arrays on Python
# 3.11, whose typeshed has no Buffer type yet)
def number_columns(hashes: object, first: int, out: object, /) -> int: ...
