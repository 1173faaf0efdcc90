"""The compiled word passes (`monitor._wordscan`) against the Python paths they shortcut.

`Scanner` picks the words of a text that may hold a phrase's first token; the Python side
then looks up only those. It may pick too many, never too few: every word holding a phrase
start must be among them, or a hit would be lost. `TermCounter` counts an ASCII text's terms
as `monitor.similarity._terms` does, in the same order, so the seed similarity is the same
float; `SeedScorer` computes that similarity itself, and must give the Python path's floats
bit for bit. `hash_form` gives the text an ASCII item's content hash is taken from, which must
be the Python path's to the character, or stored duplicates would no longer be found.
`WordTally` counts an ASCII text's letters and stop words as `monitor.lang` does, so the
detected language is the same. `tests/test_match_speed.py` checks whichever path is
built against the matcher's reference; here both paths must agree. Skipped, with the reason
shown, where the module was not built.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import lang, normalize, similarity
from monitor.match import Entry, Matcher, PhraseIndex, _entries, _only_plain_spaces, prepare
from monitor.similarity import _STOPWORDS, _terms, load_seed_index
from monitor.watchlist import load_watchlist
from tests.test_match_speed import _SPACED_ALPHABET, _bench_items, _item, _items, _words

compiled = pytest.importorskip(
    "monitor._wordscan",
    reason="monitor._wordscan is not built (no C compiler at install): the Python path runs",
)

ROOT = Path(__file__).resolve().parent.parent
WATCHLIST = ROOT / "config" / "watchlist.yaml"
NOW = datetime(2030, 1, 1, tzinfo=UTC)

#: Phrases whose first tokens take every rule of a token's key: possessives, apostrophes
#: inside a word, digits first, English plurals (-s, -ies, and the -ss/-us/-is kept),
#: punctuation, an apostrophe alone, a Cyrillic stem, capitals.
TRICKY_PHRASES = (
    "Putin's envoy",
    "don't",
    "O'Brien",
    "rock'n'roll",
    "G7 summit",
    "2022 talks",
    "1990s",
    "parties",
    "policies agreed",
    "press",
    "status quo",
    "analysis",
    "#peacetalks",
    "& partners",
    "' s",
    "переговорах",
    "NATO",
    "US",
)


def tricky_index() -> PhraseIndex:
    return PhraseIndex(Entry("topic", f"t{n}", p) for n, p in enumerate(TRICKY_PHRASES))


@cache
def shipped_index() -> PhraseIndex:
    return PhraseIndex(_entries(load_watchlist(WATCHLIST)))


def python_path(index: PhraseIndex) -> PhraseIndex:
    """`index` looking every word up in Python, as without the module (its memos shared)."""
    fresh = PhraseIndex(())
    for name in PhraseIndex.__slots__:
        setattr(fresh, name, getattr(index, name))
    fresh._scanner = None
    return fresh


def words_with_offsets(text: str) -> Iterator[tuple[int, int, str]]:
    """Each word of `text` as `str.split(" ")` cuts it, with its offsets."""
    at = 0
    for word in text.split(" "):
        yield at, at + len(word), word
        at += len(word) + 1


def assert_no_start_is_missed(index: PhraseIndex, text: str) -> tuple[int, int, int]:
    """Every word where some phrase starts is picked; returns how many words were (picked,
    holding a phrase's first token, holding a phrase's start)."""
    prepared = prepare(text)
    assert index._scanner is not None
    spans = index._scanner.spans(prepared)
    picked = set(zip(spans[::2], spans[1::2], strict=True))
    holding = starting = 0
    for start, end, word in words_with_offsets(prepared):
        firsts = index._word_starts[word] if word else ()
        if not firsts:
            continue
        holding += 1
        if any(index._find_at(prepared, start + a, start + b, key) for a, b, key in firsts):
            starting += 1
            assert (start, end) in picked, (word, prepared)
    return len(picked), holding, starting


def real_texts() -> list[str]:
    """The evaluation items, the labelled story set, the seed op-eds, the bench items."""
    texts = [t for fields in (*_items(), *_bench_items()) for t in fields if t]
    for line in (ROOT / "tests/data/stories/items.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            texts += [row["title"], row.get("summary") or ""]
    for path in sorted((ROOT / "corpus").glob("*.txt")):
        texts += path.read_text(encoding="utf-8").split("\n\n")
    return [t for t in texts if t]


# --- Scanner -------------------------------------------------------------------------------


def test_real_texts_lose_no_phrase_start() -> None:
    index = shipped_index()
    texts = real_texts()
    assert len(texts) > 2000
    spaced = [t for t in texts if _only_plain_spaces(prepare(t))]
    assert len(spaced) > 1000
    ascii_counts = [0, 0, 0]
    for text in spaced:
        counts = assert_no_start_is_missed(index, text)
        if prepare(text).isascii():
            ascii_counts = [a + b for a, b in zip(ascii_counts, counts, strict=True)]
    picked, holding, starting = ascii_counts
    assert starting > 1000
    # ASCII words are narrowed down to those holding a first token that may go on.
    assert starting <= picked <= holding


def test_bench_items_pick_only_words_that_may_start_a_phrase() -> None:
    """Of the words holding a phrase's first token, those whose phrases all go on and whose
    next word goes on none of them are left out: most of the bench's."""
    index = shipped_index()
    totals = [0, 0, 0]
    for fields in _bench_items():
        for text in fields:
            if text and _only_plain_spaces(prepare(text)):
                counts = assert_no_start_is_missed(index, text)
                totals = [a + b for a, b in zip(totals, counts, strict=True)]
    picked, holding, starting = totals
    assert starting <= picked < 0.6 * holding


def _spaced_texts() -> st.SearchStrategy[str]:
    pieces = [*_SPACED_ALPHABET, *TRICKY_PHRASES, "Putin's", "PARTIES", "policies", "G7's"]
    # First tokens of phrases that all go on, and what may or may not go on with them.
    pieces += ["status", "quo", "Quo", "quoted", "quo's", "G7", "summits", "2022", "agreed"]
    piece = st.one_of(st.sampled_from(pieces), st.sampled_from(_words()))
    return st.lists(piece, max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(_spaced_texts())
def test_generated_texts_lose_no_phrase_start(text: str) -> None:
    if not _only_plain_spaces(prepare(text)):
        return
    assert_no_start_is_missed(shipped_index(), text)
    assert_no_start_is_missed(tricky_index(), text)


@settings(max_examples=300, deadline=None)
@given(_spaced_texts())
def test_both_paths_find_the_same_hits(text: str) -> None:
    for index in (shipped_index(), tricky_index()):
        assert index.find(text) == python_path(index).find(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Putin's envoy", ["Putin's"]),
        ("the parties met", ["parties"]),  # -ies: the key is "party"
        ("a party", ["party"]),
        ("the press and the presses", ["press"]),  # -ss kept: "presses" has the key "presse"
        ("G7 leaders, 1990s.", ["1990s."]),  # a digit first: no stem; "G7" only in "G7 summit"
        ("G7 summits", ["G7"]),  # the plural's key is "summit"
        ("2022 talks", ["2022"]),
        ("policies agreed", ["policies"]),
        ("policies differ", []),
        ("status quo", ["status"]),
        ("status Quo", ["status"]),
        ("status quoted", []),
        ("status", []),  # nothing follows
        ("status  quo", ["status"]),  # two spaces: left to Python
        ("status, quo", ["status,"]),  # punctuation next: left to Python
        ("status quo's", ["status"]),  # an apostrophe in the next word: left to Python
        ("status кво", ["status", "кво"]),  # a word outside ASCII next: left to Python
        ("#peacetalks now", ["#peacetalks"]),  # a punctuation key
        ("it's late", []),  # the key "'s", which starts no phrase ("' s" starts with "'")
        ("Don't stop rock'n'roll", ["Don't", "rock'n'roll"]),
        ("quiet words only", []),
        ("", []),
        ("   ", []),
        ("на переговорах", ["на", "переговорах"]),  # outside ASCII: always picked
    ],
)
def test_what_the_scanner_picks(text: str, expected: list[str]) -> None:
    index = tricky_index()
    assert index._scanner is not None
    spans = index._scanner.spans(text)
    picked = [text[a:b] for a, b in zip(spans[::2], spans[1::2], strict=True)]
    assert picked == expected
    assert index.find(text) == python_path(index).find(text)


def test_scanner_keys_of_unknown_shape_pick_every_word() -> None:
    scanner = compiled.Scanner(["a.b"])
    assert scanner.spans("x y") == [0, 1, 2, 3]
    assert compiled.Scanner(["talk"]).spans("x talks") == [2, 7]
    assert compiled.Scanner(["переговор"]).spans("x y") == []  # no ASCII word has it


def test_scanner_continuations_narrow_only_word_keys() -> None:
    """A key or second key of another shape than a word's is left out of the narrowing:
    the word is picked as without it."""
    plain = compiled.Scanner(["talk", "#"])
    narrowed = compiled.Scanner(["talk", "#"], {"talk": ["round", "#", "раунд"], "#": ["x"]})
    for text in ("talks round", "talks now", "talks # x", "talks раунд", "# y", "talks"):
        assert set(narrowed.spans(text)) <= set(plain.spans(text)), text
    assert narrowed.spans("talks round") == [0, 5]
    assert narrowed.spans("talks now") == []
    assert narrowed.spans("talks # x") == [0, 5, 6, 7]  # "#" is a key of its own
    assert narrowed.spans("talks раунд") == [0, 5, 6, 11]
    assert narrowed.spans("# y") == [0, 1]


def test_scanner_rejects_what_is_not_text() -> None:
    with pytest.raises(TypeError):
        compiled.Scanner(["talk"], {"talk": [1]})
    with pytest.raises(TypeError):
        compiled.Scanner(["talk"], {1: ["x"]})
    with pytest.raises(TypeError):
        compiled.Scanner(["talk"], ["talk"])
    with pytest.raises(TypeError):
        compiled.Scanner([1])
    with pytest.raises(TypeError):
        compiled.Scanner(["talk"]).spans(b"talks")  # type: ignore[arg-type]


def test_compiled_objects_are_set_up_once() -> None:
    """Their tables never change once made: a second `__init__` (which another thread's
    call could be reading) is refused, and an object never set up says so."""
    scanner = compiled.Scanner(["talk"])
    with pytest.raises(RuntimeError, match="already"):
        scanner.__init__(["summit"])  # type: ignore[misc]
    assert scanner.spans("summit talks") == [7, 12]
    counter = compiled.TermCounter(["the"])
    with pytest.raises(RuntimeError, match="already"):
        counter.__init__(["talks"])  # type: ignore[misc]
    assert counter.counts("the talks") == {"talk": 1}
    with pytest.raises(RuntimeError, match="not initialised"):
        compiled.Scanner.__new__(compiled.Scanner).spans("talks")
    with pytest.raises(RuntimeError, match="not initialised"):
        compiled.TermCounter.__new__(compiled.TermCounter).counts("talks")


# --- TermCounter ---------------------------------------------------------------------------

ascii_text = st.lists(
    st.sampled_from(
        [
            *"abcIJKxyzS0189 \t\n\x00\x7f'-_.,;!?&",
            *("the ", "Parties ", "policies", " press ", "TALKS", "ies ", "bus", "is", "said "),
        ]
    ),
    max_size=120,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(ascii_text)
def test_terms_counted_as_the_python_path_counts_them(text: str) -> None:
    counted = similarity._query_terms(text)
    reference = _terms(text)
    assert list(counted.items()) == list(reference.items())


@given(st.text(max_size=200))
def test_terms_of_any_text_are_the_python_path_s(text: str) -> None:
    counter = compiled.TermCounter(sorted(_STOPWORDS))
    counts = counter.counts(text)
    if text.isascii():
        assert counts is not None and list(counts.items()) == list(_terms(text).items())
    else:
        assert counts is None
    assert list(similarity._query_terms(text).items()) == list(_terms(text).items())


def test_real_texts_counted_as_the_python_path_counts_them() -> None:
    texts = real_texts()
    ascii_texts = [t for t in texts if t.isascii()]
    assert len(ascii_texts) > 1000
    for text in texts:
        assert list(similarity._query_terms(text).items()) == list(_terms(text).items())


def test_term_counter_rejects_stopwords_outside_ascii() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        compiled.TermCounter(["für"])


# --- SeedScorer ------------------------------------------------------------------------------


@cache
def seed_index() -> similarity.SeedIndex:
    return load_seed_index(ROOT / "corpus")


@cache
def ascii_seed_words() -> tuple[str, ...]:
    words = {w for p in (ROOT / "corpus").glob("*.txt") for w in p.read_text().split()}
    return tuple(sorted(w for w in words if w.isascii()))


#: ASCII texts made of the seeds' own words (so most terms are held by some seed, many
#: repeated) and of the pieces that take the term rules apart.
seed_like_text = st.lists(
    st.one_of(st.sampled_from(ascii_seed_words()), ascii_text), max_size=300
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(seed_like_text)
def test_seed_similarities_are_the_python_path_s_bit_for_bit(text: str) -> None:
    seeds = seed_index()
    assert seeds.scorer is not None and seeds.scorer.similarities(text) is not None
    assert seeds.similarities(text) == seeds._similarities(text)


def test_real_texts_compare_with_the_seeds_as_the_python_path_does() -> None:
    """Real item texts, and the seed documents themselves (each one's own vector)."""
    seeds = seed_index()
    seed_texts = [p.read_text() for p in sorted((ROOT / "corpus").glob("*.txt"))]
    texts = [*real_texts(), *(t.encode("ascii", "replace").decode() for t in seed_texts)]
    compared = 0
    for text in texts:
        assert seeds.similarities(text) == seeds._similarities(text)
        compared += text.isascii()
    assert compared > 1000
    own = [dict(seeds.similarities(t)) for t in texts[-len(seed_texts) :]]
    assert [max(sims, key=sims.__getitem__) for sims in own] == list(seeds.names)


def test_seed_scorer_leaves_text_outside_ascii_to_python() -> None:
    seeds = seed_index()
    text = "Переговоры о мире: talks on a ceasefire"
    assert seeds.scorer is not None and seeds.scorer.similarities(text) is None
    assert seeds.similarities(text) == seeds._similarities(text)


def test_seed_scorer_of_a_text_without_terms_is_all_zeros() -> None:
    seeds = seed_index()
    assert seeds.scorer is not None
    for text in ("", "   ", "the and of 12 to", "a b c"):
        assert seeds.scorer.similarities(text) == [0.0] * len(seeds.names)
        assert seeds.similarities(text) == seeds._similarities(text)


def test_seed_index_is_rebuilt_with_its_scorer_when_unpickled() -> None:
    seeds = seed_index()
    loaded = pickle.loads(pickle.dumps(seeds, pickle.HIGHEST_PROTOCOL))
    assert loaded == seeds and loaded.postings == seeds.postings
    assert loaded.scorer is not None and loaded.scorer is not seeds.scorer
    text = "The ceasefire talks in Istanbul stalled over security guarantees."
    assert loaded.similarities(text) == seeds.similarities(text)


@pytest.mark.parametrize(
    ("terms", "idf", "postings", "message"),
    [
        (["talk"], [1.0, 2.0], [()], "differ in length"),
        (["talk"], [1.0], [[(3, 0.5)]], "out of range"),
        (["talk", "talk"], [1.0, 1.0], [(), ()], "twice"),
        (["переговоры"], [1.0], [()], "ASCII"),
    ],
)
def test_seed_scorer_rejects_inconsistent_tables(
    terms: list[str], idf: list[float], postings: list[object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compiled.SeedScorer([], terms, idf, postings, 2.0, 2)


def test_seed_index_without_the_compiled_module_compares_in_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(similarity, "_COMPILED", False)
    plain = load_seed_index(ROOT / "corpus")
    assert plain.scorer is None
    text = "Envoys met in Geneva to discuss a ceasefire and prisoner exchanges."
    assert plain.similarities(text) == seed_index().similarities(text)


# --- WordTally -----------------------------------------------------------------------------


def _python_tally(text: str) -> tuple[int, int, int] | None:
    """What `WordTally.tally` must give, counted as `monitor.lang`'s Python path counts."""
    if not text.isascii() or "'" in text:
        return None
    letters_only = text.translate(lang._ASCII_LETTERS_ONLY)
    words = letters_only.split()
    return (
        len(text) - letters_only.count(" "),
        lang._count(words, lang._EN_WORDS),
        lang._count(words, lang._OTHER_LATIN_WORDS),
    )


def _detected_in_python(text: str, hint: str | None) -> str:
    tally, lang._TALLY = lang._TALLY, None
    try:
        return lang.detect_lang(text, hint)
    finally:
        lang._TALLY = tally


stop_word_text = st.lists(
    st.sampled_from(
        [
            *"abzAZ09 \t\n\x00\x7f'-_.,;!?&",
            *("the ", "The ", "THE", " of ", "der ", "Le ", "la", "und", "talks ", "it's ", "in"),
        ]
    ),
    max_size=80,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(stop_word_text, st.sampled_from([None, "en", "de", "ru"]))
def test_stop_words_tallied_as_the_python_path_counts_them(text: str, hint: str | None) -> None:
    assert lang._TALLY is not None
    assert lang._TALLY.tally(text) == _python_tally(text)
    assert lang.detect_lang(text, hint) == _detected_in_python(text, hint)


@given(st.text(max_size=120))
def test_any_text_is_tallied_or_left_to_python(text: str) -> None:
    assert lang._TALLY is not None
    assert lang._TALLY.tally(text) == _python_tally(text)


def test_real_texts_get_the_python_path_s_language() -> None:
    texts = real_texts()
    tallied = [t for t in texts if t.isascii() and "'" not in t]
    assert len(tallied) > 1000
    for text in texts:
        for hint in (None, "en", "ru"):
            assert lang.detect_lang(text, hint) == _detected_in_python(text, hint), text[:80]


@pytest.mark.parametrize(("letters", "expected"), [(23, "other"), (24, "en"), (25, "en")])
def test_a_short_text_is_told_by_its_letters_on_both_paths(letters: int, expected: str) -> None:
    """Two English stop words decide a text of 24 letters or more; a shorter one keeps the
    feed's hint ("de": another Latin language)."""
    text = "The the " + "x" * (letters - 6)
    assert lang.detect_lang(text, "de") == _detected_in_python(text, "de") == expected


def test_word_tally_is_set_up_once_with_ascii_words() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        compiled.WordTally(["the"], ["für"])
    tally = compiled.WordTally(["the"], ["der"])
    with pytest.raises(RuntimeError, match="already"):
        tally.__init__(["of"], ["und"])  # type: ignore[misc]
    assert tally.tally("The der, THE") == (9, 2, 1)
    with pytest.raises(RuntimeError, match="not initialised"):
        compiled.WordTally.__new__(compiled.WordTally).tally("talks")
    with pytest.raises(TypeError):
        tally.tally(b"the")  # type: ignore[arg-type]


# --- hash_form -------------------------------------------------------------------------------

#: ASCII with every class `_ascii_hash_form` treats apart: letters of both cases, digits, the
#: underscore (punctuation there), other punctuation, every whitespace and control character.
any_ascii = st.text(alphabet=st.characters(max_codepoint=127), max_size=300)


@settings(max_examples=500, deadline=None)
@given(st.one_of(any_ascii, ascii_text))
def test_hash_form_is_the_python_path_s(text: str) -> None:
    assert compiled.hash_form(text) == normalize._ascii_hash_form(text)


def test_hash_form_of_real_texts_and_outside_ascii() -> None:
    texts = real_texts()
    assert sum(t.isascii() for t in texts) > 1000
    for text in texts:
        expected = normalize._ascii_hash_form(text) if text.isascii() else None
        assert compiled.hash_form(text) == expected
    assert compiled.hash_form("Zelensky  said:\tA_B\x00c--") == "zelensky said a b c"
    assert compiled.hash_form("") == ""
    with pytest.raises(TypeError, match="str"):
        compiled.hash_form(b"talks")  # type: ignore[arg-type]


def test_content_hashes_are_the_same_without_the_compiled_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pairs = [(t, s) for t, s, _ in peer_corpus_fields()] if PEER_TESTS.is_dir() else []
    pairs += [(t[:80], t) for t in real_texts()]
    fast = [normalize.content_hash(t, s) for t, s in pairs]
    monkeypatch.setattr(normalize, "_HASH_FORM", None)
    assert [normalize.content_hash(t, s) for t, s in pairs] == fast


# --- whole matches -------------------------------------------------------------------------


def test_records_are_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the stream stores for each item, with the compiled passes and without."""
    watchlist = load_watchlist(WATCHLIST)
    seeds = load_seed_index(ROOT / "corpus")
    fast = Matcher.compile(watchlist, seeds)
    fields_list = [*_items(), *_bench_items()]
    with_module = [fast.record(_item(f)) for f in fields_list]
    explained = [fast.match_text(*f) for f in fields_list]
    monkeypatch.setattr(similarity, "_COUNTER", None)
    monkeypatch.setattr(similarity, "_COMPILED", False)
    monkeypatch.setattr(sys.modules["monitor.match"], "_COMPILED", False)
    slow = Matcher.compile(watchlist, load_seed_index(ROOT / "corpus"))
    assert slow._index._scanner is None and slow._seeds is not None
    assert slow._seeds.scorer is None
    assert [slow.record(_item(f)) for f in fields_list] == with_module
    assert [slow.match_text(*f) for f in fields_list] == explained
    assert sum(r is not None for r in with_module) > 100


# --- robustness on another project's corpus ---------------------------------------------------

PEER_TESTS = ROOT.parent / "shared" / "peer-corpora" / "feedparser-6.0.14" / "tests"


@cache
def peer_corpus_fields() -> tuple[tuple[str, str, str], ...]:
    """Title, summary and content of every item our parser takes from feedparser's test
    corpus: odd markup, entities, every encoding, control characters."""
    from monitor.errors import ParseError
    from monitor.normalize import normalize_entries
    from monitor.parse import parse_feed

    out: list[tuple[str, str, str]] = []
    for path in sorted(PEER_TESTS.rglob("*")):
        if not path.is_file():
            continue
        try:
            parsed = parse_feed(path.read_bytes(), url="http://example.com/feed", headers={})
        except ParseError:
            continue
        items = normalize_entries(parsed, now=NOW, max_items=500).items
        out += [(i.title, i.summary, i.content) for i in items]
    return tuple(out)


def test_peer_corpus_items_match_alike_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    if not PEER_TESTS.is_dir():
        pytest.skip(f"peer corpus not found at {PEER_TESTS}")
    fields_list = peer_corpus_fields()
    assert len(fields_list) > 1000
    index, slow = tricky_index(), python_path(tricky_index())
    shipped, shipped_slow = shipped_index(), python_path(shipped_index())
    seeds = seed_index()
    for fields in fields_list:
        for text in fields:
            if text:
                assert index.find(text) == slow.find(text), text
                assert shipped.find(text) == shipped_slow.find(text), text
                assert list(similarity._query_terms(text).items()) == list(_terms(text).items())
                assert seeds.similarities(text) == seeds._similarities(text), text
