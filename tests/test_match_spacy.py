"""The automaton finds exactly what spaCy's PhraseMatcher finds, on the eval set and the seeds.

Both sides share the same normalisation: `prepare` (one-to-one characters) on the text, then the
token key `token_key` (lower case, English plural/possessive, Cyrillic stem) as each spaCy token's
NORM, and PhraseMatcher(attr="NORM"). Only the tokenisation differs: spaCy's rules versus our regex.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from monitor.match import Entry, Matcher, prepare, token_key
from monitor.watchlist import load_watchlist

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "tests" / "data" / "eval" / "items.jsonl"
WATCHLIST = ROOT / "config" / "watchlist.yaml"

Found = set[tuple[int, int, int]]


@cache
def _nlp(lang: str) -> Language:
    return spacy.blank(lang)


@cache
def _matcher() -> Matcher:
    return Matcher.compile(load_watchlist(WATCHLIST), None)


def _normed(nlp: Language, text: str) -> Doc:
    doc = nlp.make_doc(prepare(text))
    for token in doc:
        token.norm_ = "\x00" if token.is_space else token_key(token.text)
    return doc


@cache
def _phrase_matcher(lang: str) -> tuple[PhraseMatcher, tuple[Entry, ...]]:
    nlp = _nlp(lang)
    entries = tuple(_entries_of(_matcher()))
    pm = PhraseMatcher(nlp.vocab, attr="NORM")
    for i, entry in enumerate(entries):
        pm.add(str(i), [_normed(nlp, entry.phrase)])
    return pm, entries


def _entries_of(matcher: Matcher) -> list[Entry]:
    from monitor.match import _entries

    return _entries(matcher.watchlist)


def spacy_hits(text: str, lang: str) -> Found:
    nlp = _nlp(lang)
    pm, _ = _phrase_matcher(lang)
    doc = _normed(nlp, text)
    out: Found = set()
    for match_id, start, end in pm(doc):
        span = doc[start:end]
        out.add((int(nlp.vocab.strings[match_id]), span.start_char, span.end_char))
    return out


@cache
def _entry_numbers(lang: str) -> dict[Entry, list[int]]:
    _, entries = _phrase_matcher(lang)
    index: dict[Entry, list[int]] = {}
    for i, e in enumerate(entries):
        index.setdefault(e, []).append(i)
    return index


def automaton_hits(text: str, lang: str) -> Found:
    index = _entry_numbers(lang)
    return {
        (i, start, end) for entry, start, end in _matcher().raw_hits(text) for i in index[entry]
    }


def _eval_texts() -> list[tuple[str, str, str]]:
    if not EVAL.exists():
        return []
    rows = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line]
    return [(r["id"], r["lang"], f"{r['title']}\n{r['summary']}") for r in rows]


def _seed_texts() -> list[tuple[str, str, str]]:
    return [
        (p.stem, "en", p.read_text(encoding="utf-8")) for p in sorted(ROOT.glob("corpus/*.txt"))
    ]


@pytest.mark.slow
@pytest.mark.skipif(not EVAL.exists(), reason="evaluation set not present")
def test_automaton_equals_phrase_matcher_on_eval_set() -> None:
    total = 0
    for item_id, lang, text in _eval_texts():
        ours, theirs = automaton_hits(text, lang), spacy_hits(text, lang)
        assert ours == theirs, item_id
        total += len(ours)
    assert total > 300  # the comparison is not vacuous


def test_automaton_equals_phrase_matcher_on_seed_documents() -> None:
    total = 0
    for name, lang, text in _seed_texts():
        ours, theirs = automaton_hits(text, lang), spacy_hits(text, lang)
        assert ours == theirs, name
        total += len(ours)
    assert total > 300


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "Zelensky's aides—and Kyiv’s envoys—met in Geneva (U.S.-brokered) on 1,000 POWs."),
        ("ru", "Зеленского и Лаврова ждут в Стамбуле;  переговоров не будет.\nПеремирия нет."),
        ("uk", "Перемир'я в Києві: Зеленському та ЗСУ — «обмін полоненими» відбувся."),
    ],
)
def test_automaton_equals_phrase_matcher_on_tricky_text(lang: str, text: str) -> None:
    ours = automaton_hits(text, lang)
    assert ours == spacy_hits(text, lang)
    assert ours
