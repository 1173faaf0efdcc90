"""Story clustering, pure parts: shingles, the window, the decision, the evaluation."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import shingles as story_text
from monitor import stories
from monitor.errors import ConfigError
from monitor.evaluate_stories import format_report, load_labelled, run
from monitor.settings import StoriesSettings
from monitor.shingles import shingles, story_words
from monitor.stories import (
    PACKED,
    Candidate,
    Fingerprint,
    PlacedWindow,
    Prepared,
    StoryRules,
    alone,
    appeared_at,
    as_array,
    best_candidates,
    choose_story,
    column_of,
    comparable,
    decide_in_order,
    distinct,
    duplicate_roots,
    fingerprints,
    fingerprints_of,
    in_company,
    packed,
    plan_batch,
    processing_order,
    shingle_count,
    shingle_hashes,
    similarity,
    word_hashes,
)
from monitor.types import Item

LABELLED = Path(__file__).parent / "data" / "stories"
T0 = datetime(2025, 5, 16, 10, 0, tzinfo=UTC)
RULES = StoryRules(window=timedelta(hours=72), threshold=0.1, slope_per_hour=0.004)


def test_shingles_fold_case_accents_punctuation_and_stopwords() -> None:
    assert shingles("Zelensky’s SPEECH: “Peace!”", "Reported by the Kyiv Independent") == {
        "zelens",
        "speech",
        "peace",
        "kyiv",
        "indepe",
    }
    assert shingles("Café crème", "") == shingles("CAFE creme", "")


def test_similarity_is_exact_jaccard() -> None:
    base, other, empty = (
        fp.hashes
        for fp in fingerprints([[f"w{i}" for i in range(60)], [f"w{i}" for i in range(30, 90)], []])
    )
    assert similarity(base, other) == pytest.approx(30 / 90)
    assert similarity(base, base) == 1.0
    assert similarity(empty, empty) == 0.0


def _best(
    new: list[tuple[int, set[str], datetime]],
    stored: list[tuple[int, set[str], datetime]],
    stop_like: int = 50,
) -> dict[int, int]:
    """New item id → the id of the item `best_candidates` has it join."""
    batch = [_prepared(i, words, at) for i, words, at in new]
    placed = [_candidate(i, 100 + i, words, at) for i, words, at in stored]
    found = best_candidates(processing_order(batch), placed, RULES, stop_like)
    return {i: cand.item_id for i, (cand, _) in found.items()}


def test_candidates_share_two_shingles_or_one_when_both_sets_are_short() -> None:
    long_set = {"istanbul", *(f"heat{i}" for i in range(11))}
    stored = [(2, long_set, T0), (3, {"umerov", "kyiv", "drone"}, T0)]
    # 3 shares one word, but both sets are short enough for one to reach the threshold.
    assert _best([(9, {"istanbul", "talks", "umerov"}, T0)], stored) == {9: 3}
    # 2 shares one word with a set too long for that to count.
    assert _best([(9, {"istanbul", "talks", "press"}, T0)], stored) == {}


def test_stop_like_shingles_count_in_similarity_but_make_no_candidates() -> None:
    crowd = [(i, {"ukrain", "russia", f"a{i}", f"b{i}", f"c{i}"}, T0) for i in range(5)]
    # Shares only the two stop-like words (carried by 5 items, above 3) with the crowd.
    assert _best([(9, {"ukrain", "russia", "zzz", "yyy"}, T0)], crowd, stop_like=3) == {}
    # Two rare shared words make 20 a candidate; the stop-like ones add to the similarity.
    rare = [*crowd, (20, {"ukrain", "russia", "medins", "umerov", "d9"}, T0)]
    new = (9, {"medins", "umerov", "ukrain", "russia", "q", "r", "s"}, T0)
    assert _best([new], rare, stop_like=3) == {9: 20}


@pytest.fixture(params=["compiled", "python"])
def numbering(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The decision's columns numbered by the compiled module, or by `distinct` and
    `column_of` (as without a C compiler): every choice must be the same."""
    if request.param == "python":
        monkeypatch.setattr(stories, "_number_columns", None)
    elif stories._number_columns is None:
        pytest.skip("monitor._shinglehash is not built here: the Python numbering runs")
    return str(request.param)


@pytest.mark.parametrize(
    ("seed", "vocabulary", "stop_like", "joins"),
    [(5, 120, 25, 100), (23, 300, 50, 120), (13, 800, 8, 30), (7, 1000, 5, 15)],
)
@pytest.mark.parametrize("stored_items", [150, 0])
def test_vectorised_choice_equals_choose_story_over_the_candidates(
    seed: int, vocabulary: int, stop_like: int, joins: int, stored_items: int, numbering: str
) -> None:
    """`best_candidates` against the one-item rule it vectorises, on random overlapping sets:
    candidates are stored items and earlier batch items sharing two non-stop-like shingles
    (or one, for short sets); `choose_story` picks among them. Without stored items (a cold
    cycle) the batch's items are each other's only candidates."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocabulary)]

    def item(i: int) -> tuple[int, set[str], datetime]:
        at = T0 + timedelta(hours=rng.randrange(0, 100))
        return i, set(rng.sample(words, rng.randint(3, 14))), at

    stored = [item(i) for i in range(stored_items)]
    new = [item(i) for i in range(1000, 1250)]
    got = _best(new, stored, stop_like)

    pool = [_candidate(i, 100 + i, w, at) for i, w, at in stored]
    batch = processing_order([_prepared(i, w, at) for i, w, at in new])
    sets = {c.item_id: set(as_array(c.hashes).tolist()) for c in pool}
    sets |= {p.item_id: set(as_array(p.hashes).tolist()) for p in batch}
    counts = Counter(h for hashes in sets.values() for h in hashes)
    expected: dict[int, int] = {}
    for p in batch:
        rare = {h for h in sets[p.item_id] if counts[h] <= stop_like}
        size = len(sets[p.item_id])
        eligible = [
            c
            for c in pool
            if len(rare & sets[c.item_id]) >= 2
            or (
                len(rare & sets[c.item_id]) == 1
                and size + len(sets[c.item_id]) <= (1 + RULES.threshold) / RULES.threshold
            )
        ]
        choice = choose_story(p, eligible, RULES)
        if choice is not None:
            expected[p.item_id] = choice[0].item_id
        pool.append(Candidate(p.item_id, None, p.appeared_at, p.fingerprint.hashes))
    assert len(expected) >= (joins if stored_items else joins // 3)  # the case exercises the rule
    assert got == expected


@pytest.mark.parametrize(("rows", "pairs"), [(1, 1), (3, 40), (7, 1)])
def test_the_choice_does_not_depend_on_how_rows_are_stepped(
    rows: int, pairs: int, monkeypatch: pytest.MonkeyPatch, numbering: str
) -> None:
    """Rows are taken in steps bounded by rows and by rare pairs (a step holds at least one
    row); any stepping gives the same choices."""
    rng = random.Random(17)
    words = [f"w{i}" for i in range(90)]

    def item(i: int) -> tuple[int, set[str], datetime]:
        return i, set(rng.sample(words, rng.randint(3, 12))), T0 + timedelta(hours=i % 30)

    stored = [item(i) for i in range(60)]
    new = [item(i) for i in range(1000, 1120)]
    expected = _best(new, stored, stop_like=12)
    monkeypatch.setattr(stories, "ROWS_PER_STEP", rows)
    monkeypatch.setattr(stories, "PAIRS_PER_STEP", pairs)
    assert expected and _best(new, stored, stop_like=12) == expected


def test_window_evicts_old_items_and_replaying_an_addition_is_harmless() -> None:
    window = PlacedWindow()
    window.add([_candidate(1, 1, TALKS, T0), _candidate(2, 1, TALKS, T0 + timedelta(hours=5))])
    window.add([_candidate(2, 1, TALKS, T0 + timedelta(hours=5))])
    assert len(window) == 2
    assert window.evict(T0 + timedelta(hours=1)) == 1
    assert 1 not in window and 2 in window
    assert [c.item_id for c in window.entries()] == [2]
    window.remove([2])
    assert len(window) == 0 and window.entries() == []


def test_window_compacts_after_many_removals() -> None:
    window = PlacedWindow()
    window.add(
        [_candidate(i, i, {"x", "y", f"u{i}"}, T0 + timedelta(seconds=i)) for i in range(3000)]
    )
    window.remove(range(2990))
    assert len(window) == 10 and len(window._by_time) == 10
    assert window.evict(T0 + timedelta(hours=1)) == 10


@pytest.mark.parametrize(
    ("gap_h", "expected"),
    [(0, 0.1), (10, 0.14), (-10, 0.14), (72, 0.1 + 0.288), (73, float("inf"))],
)
def test_required_similarity_grows_with_time_apart(gap_h: float, expected: float) -> None:
    assert RULES.required(timedelta(hours=gap_h)) == pytest.approx(expected)


def test_rules_from_settings() -> None:
    rules = StoryRules.from_settings(StoriesSettings(window="48h", threshold=0.2))
    assert rules.window == timedelta(hours=48) and rules.threshold == 0.2
    assert rules.slope_per_hour == StoriesSettings().threshold_slope


def _prepared(item_id: int, words: set[str], at: datetime) -> Prepared:
    [fp] = fingerprints([words])
    return Prepared(item_id, at, fp)


def _candidate(item_id: int, story_id: int, words: set[str], at: datetime) -> Candidate:
    [fp] = fingerprints([words])
    return Candidate(item_id, story_id, at, fp.hashes)


TALKS = {
    "istanbul",
    "talks",
    "delegation",
    "medinsky",
    "umerov",
    "prisoner",
    "exchange",
    "ceasefire",
    "memorandum",
    "round",
}


def test_choose_story_joins_similar_item_within_window() -> None:
    new = _prepared(9, TALKS | {"turkey"}, T0 + timedelta(hours=2))
    near = _candidate(1, 100, TALKS, T0)
    unrelated = _candidate(2, 200, {"heatwave", "spain", "seville"}, T0)
    choice = choose_story(new, [unrelated, near], RULES)
    assert choice is not None and choice[0].story_id == 100 and choice[1] > 0.5


def test_choose_story_refuses_outside_window_and_weak_overlap() -> None:
    new = _prepared(9, TALKS, T0 + timedelta(hours=80))
    assert choose_story(new, [_candidate(1, 100, TALKS, T0)], RULES) is None
    weak = _prepared(
        9,
        {
            "istanbul",
            "talks",
            "lavrov",
            "nato",
            "missiles",
            "europe",
            "troops",
            "border",
            "interview",
            "television",
        },
        T0 + timedelta(hours=24),
    )
    assert choose_story(weak, [_candidate(1, 100, TALKS, T0)], RULES) is None


def test_choose_story_prefers_widest_margin_over_recency() -> None:
    new = _prepared(9, TALKS, T0 + timedelta(hours=30))
    older_copy = _candidate(1, 100, TALKS, T0)  # similarity 1.0, needs 0.22
    recent_partial = _candidate(  # similarity 7/11, needs 0.104
        2, 200, set(sorted(TALKS)[:7]) | {"x"}, T0 + timedelta(hours=29)
    )
    choice = choose_story(new, [recent_partial, older_copy], RULES)
    assert choice is not None and choice[0].story_id == 100


def test_too_short_items_never_join_by_similarity() -> None:
    new = _prepared(9, {"update"}, T0)
    assert choose_story(new, [_candidate(1, 100, {"update"}, T0)], RULES) is None


def test_plan_batch_places_batch_items_in_order_of_appearance() -> None:
    later = _prepared(3, TALKS | {"turkey"}, T0 + timedelta(hours=1))
    first = _prepared(2, TALKS, T0)
    other = _prepared(4, {"flood", "levee", "danube", "alert"}, T0)
    joins_stored = _prepared(5, {"heatwave", "spain", "seville", "water"}, T0)
    # Candidates are pooled: every stored item is a candidate for every new one.
    stored = {0: [_candidate(1, 77, {"heatwave", "spain", "seville", "water", "red"}, T0)]}
    d_later, d_first, d_other, d_stored = plan_batch(
        [later, first, other, joins_stored], stored, {}, RULES
    )
    assert d_first.starts_story and d_first.leader_id == 2
    assert d_later.leader_id == 2 and d_later.via_item_id == 2 and not d_later.starts_story
    assert d_other.starts_story
    assert d_stored.story_id == 77 and d_stored.via_item_id == 1


def test_plan_batch_sends_exact_duplicates_to_their_root_story() -> None:
    copy = Prepared(8, T0, _prepared(8, {"a", "b", "c"}, T0).fingerprint, duplicate_of=3)
    [d] = plan_batch([copy], {}, {3: 42}, RULES)
    assert (d.story_id, d.duplicate_of, d.similarity) == (42, 3, 1.0)


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_deciding_only_the_items_in_company_changes_no_decision(seed: int) -> None:
    """`decide_in_order` over the items `in_company` keeps, with `alone` for the rest, gives
    every item the decision it gets when the whole batch is decided: on random batches with
    joins to stored items and to earlier batch items, and exact duplicates of both."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(200)]

    def words_at() -> tuple[set[str], datetime]:
        return set(rng.sample(words, rng.randint(3, 12))), T0 + timedelta(hours=rng.random() * 60)

    stored = [_candidate(i, 500 + i, *words_at()) for i in range(80)]
    batch = [_prepared(i, *words_at()) for i in range(1000, 1300)]
    ids = [p.item_id for p in batch]
    roots = {i: rng.choice([*ids[:40], 1, 2, 3]) for i in rng.sample(ids[40:], 60)}
    batch = [p._replace(duplicate_of=roots.get(p.item_id)) for p in batch]
    ordered = processing_order(batch)
    best = best_candidates(ordered, stored, RULES, stop_like=30)
    duplicate_story = {1: 501, 2: None, 3: 503}

    whole = decide_in_order(ordered, best, duplicate_story)
    kept = in_company(ordered, best, roots)
    part = decide_in_order(kept, best, duplicate_story)

    assert len(best) >= 40 and 0 < len(kept) < len(batch)  # the case exercises both sides
    assert [p.item_id for p in kept] == [p.item_id for p in ordered if p.item_id in part]
    for p in batch:
        assert part.get(p.item_id, alone(p)) == whole[p.item_id]
    assert plan_batch(batch, {0: stored}, duplicate_story, RULES, 30) == [
        whole[p.item_id] for p in batch
    ]


def test_duplicate_roots_link_by_url_or_hash_to_lowest_id() -> None:
    rows = [(5, "u1", "h1"), (3, "u2", "h1"), (9, "u1", "h9"), (7, None, "h7"), (8, None, None)]
    assert duplicate_roots(rows) == {5: 3, 9: 3}


def _item(published: datetime | None, seen: datetime) -> Item:
    return Item("i", None, None, "t", "s", "", None, published, None, seen, "en", "h")


def test_appeared_at_is_published_unless_missing_or_in_the_future() -> None:
    assert appeared_at(_item(T0, T0 + timedelta(hours=1))) == T0
    assert appeared_at(_item(None, T0)) == T0
    assert appeared_at(_item(T0 + timedelta(days=3), T0)) == T0


def test_labelled_set_scores_above_floors() -> None:
    result = run(LABELLED, StoryRules.from_settings(StoriesSettings()))
    assert result.precision >= 0.95, format_report(result)
    assert result.recall >= 0.88, format_report(result)


def test_labelled_set_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "items.jsonl"
    bad.write_text('{"id": "a"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"items.jsonl:1: missing .*story"):
        load_labelled(tmp_path)
    bad.write_text("not json\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"items.jsonl:1: invalid JSON"):
        load_labelled(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_labelled(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        ("Lavrov: Moscow ready for talks", "Sergei Lavrov said Moscow was ready."),
        ("Зеленський зустрівся з Віткоффом", "Переговори у Стамбулі тривали дві години."),
        ("Café déjà vu — ÉLYSÉE talks", "Macron's envoy: ceasefire 'within days'"),
        ("", ""),
    ],
)
def test_story_words_sent_from_a_worker_give_the_same_fingerprint(title: str, summary: str) -> None:
    words = story_words(title, summary)
    assert sorted(words.split()) == sorted(shingles(title, summary))
    [from_words] = fingerprints_of([words])
    [from_set] = fingerprints([shingles(title, summary)])
    words_hashes = as_array(from_words.hashes).tolist()
    assert sorted(words_hashes) == sorted(as_array(from_set.hashes).tolist())
    assert len(set(words_hashes)) == shingle_count(from_words.hashes)


def test_stored_hashes_read_back_as_they_were_taken() -> None:
    """`items.story_hashes` is 4 little-endian bytes per hash whatever the machine, as
    records hold them, and reading them back gives each item its own hashes (empty ones
    included), as int64."""
    taken = word_hashes(["kyiv зеленс 𝔘nicode", "", "talks resume geneva"])
    blobs = [packed(h) for h in taken]
    assert blobs[0] == b"".join(v.to_bytes(4, "little") for v in PINNED_HASHES)
    back = [as_array(b) for b in blobs]
    assert [h.tolist() for h in back] == [h.tolist() for h in taken]
    assert {h.dtype for h in back} == {np.dtype(np.int64)}
    assert [shingle_count(b) for b in blobs] == [len(h) for h in taken] == [3, 0, 3]


def test_shingle_hashes_pack_words_and_keep_packed_ones_in_a_mixed_batch() -> None:
    """Packed hashes (a worker's) pass as they are, story words are hashed and packed, and
    each item keeps its place."""
    first, second = (packed(h) for h in word_hashes(["kyiv talks geneva", "lavrov istanb"]))
    taken: list[bytes | str] = [first, "lavrov istanb", "kyiv talks geneva", first]
    assert shingle_hashes(taken) == [first, second, first, first]
    assert shingle_hashes([first, second]) == [first, second]


def test_an_item_needs_three_shingles_to_be_compared() -> None:
    """Packed hashes are counted in hashes, not bytes (4 bytes each)."""
    two, three = (packed(h) for h in word_hashes(["kyiv talks", "kyiv talks geneva"]))
    assert (shingle_count(two), comparable(two), Fingerprint(two).comparable) == (2, False, False)
    assert (shingle_count(three), comparable(three), Fingerprint(three).comparable) == (
        3,
        True,
        True,
    )


def test_word_hashes_are_fixed_values_the_same_in_every_process() -> None:
    """Workers and the parent hash apart: the values must not depend on the process
    (as `hash()` of a str does), so they are pinned here."""
    [hashes] = word_hashes(["kyiv зеленс 𝔘nicode"])
    assert hashes.dtype == np.int64
    assert hashes.tolist() == PINNED_HASHES


#: The low 32 bits of the 64-bit values stored before revision 0006 (-7908771041845151970,
#: 1318492621396596969, -2680593782187613672): the migration keeps exactly these.
PINNED_HASHES = [3505157918, 2974898409, 1368793624]


def test_word_hashes_do_not_depend_on_how_texts_are_grouped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = ["a bb", "", "ccc a", "  ", "bb\tdd  e", "a"]
    whole = [h.tolist() for h in word_hashes(texts)]
    assert [len(h) for h in whole] == [2, 0, 2, 0, 3, 1]
    assert whole[0][0] == whole[2][1] == whole[5][0] and whole[0][1] == whole[4][0]
    one_by_one = [word_hashes([t])[0].tolist() for t in texts]
    assert one_by_one == whole
    monkeypatch.setattr(stories, "HASH_CHUNK", 4)
    assert [h.tolist() for h in word_hashes(texts)] == whole
    assert word_hashes([]) == []


def test_word_hashes_tell_apart_every_stem_of_the_labelled_set_and_near_misses() -> None:
    vocabulary = {w for it in load_labelled(LABELLED) for w in shingles(it.title, it.summary)}
    vocabulary |= {"ab", "ba", "a", "aa", "aaa", "b", "ab1", "1ab", "київ", "киев", "kiev"}
    vocabulary |= {chr(c) for c in range(33, 3000)}
    [hashes] = word_hashes([" ".join(sorted(vocabulary))])
    assert len(set(hashes.tolist())) == len(vocabulary) > 3000


@pytest.mark.parametrize("size", [0, 1, 2, 7, 300, 5000])
def test_distinct_gives_the_sorted_distinct_values(size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.integers(-(2**63), 2**63 - 1, size, dtype=np.int64)
    repeated = np.concatenate([values, values[: size // 2], values[:1]])
    rng.shuffle(repeated)
    found = distinct(repeated)
    assert found.dtype == np.int64
    assert found.tolist() == sorted(set(repeated.tolist()))


@pytest.mark.parametrize("size", [0, 1, 7, 300, 5000])
def test_column_of_finds_each_key_in_the_vocabulary_or_minus_one(size: int) -> None:
    rng = np.random.default_rng(size)
    vocab = np.unique(rng.integers(-(2**63), 2**63 - 1, size, dtype=np.int64))
    present = vocab[rng.integers(0, len(vocab), 4 * size)] if size else vocab
    keys = np.concatenate([present, rng.integers(-(2**63), 2**63 - 1, 500, dtype=np.int64)])
    known = set(vocab.tolist())
    expected = [int(np.searchsorted(vocab, k)) if k in known else -1 for k in keys.tolist()]
    assert column_of(vocab, keys).tolist() == expected


@pytest.mark.parametrize("size", [300, 5000])
def test_column_of_stays_exact_when_the_table_is_capped(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vocabulary too large for a sparse table gets one at most half full: long probe
    chains, the same answers."""
    monkeypatch.setattr(stories, "TABLE_BITS", 4)
    rng = np.random.default_rng(size + 1)
    vocab = np.unique(rng.integers(-(2**63), 2**63 - 1, size, dtype=np.int64))
    keys = np.concatenate([vocab[::-1], rng.integers(-(2**63), 2**63 - 1, 2000, dtype=np.int64)])
    known = {v: i for i, v in enumerate(vocab.tolist())}
    assert column_of(vocab, keys).tolist() == [known.get(k, -1) for k in keys.tolist()]


def test_column_of_copes_when_every_key_lands_on_the_same_slot() -> None:
    vocab = np.arange(0, 300 * 2**32, 2**32, dtype=np.int64)  # equal low bits: one long probe
    keys = np.concatenate([vocab[::-1], vocab + 1])
    found = column_of(vocab, keys).tolist()
    assert found == list(range(299, -1, -1)) + [-1] * 300


@pytest.mark.parametrize(("size", "first"), [(0, 0), (1, 0), (1, 1), (9, 4), (5000, 1200)])
def test_compiled_columns_are_the_python_columns_renumbered(size: int, first: int) -> None:
    """`number_columns` gives each value the column `column_of` gives it, under other
    numbers: the same values share a column, and values only stored items hold get -1."""
    compiled = pytest.importorskip("monitor._shinglehash", reason="not built here")
    rng = np.random.default_rng(size + first)
    values = rng.integers(-(2**63), 2**63 - 1, max(1, size // 3), dtype=np.int64)
    hashes = values[rng.integers(0, len(values), size)]
    # Some stored shingles no new item has; the rest are shared with new items.
    hashes[: first // 2] = rng.integers(-(2**63), 2**63 - 1, first // 2, dtype=np.int64)
    cols = np.full(len(hashes), -7, dtype=np.int32)
    width = compiled.number_columns(hashes, first, cols)
    expected = column_of(distinct(hashes[first:]), hashes)
    assert width == len(set(hashes[first:].tolist()))
    assert ((cols == -1) == (expected == -1)).all()
    relabel = dict(zip(cols.tolist(), expected.tolist(), strict=True))
    assert [relabel[c] for c in cols.tolist()] == expected.tolist()
    assert len(set(relabel.values())) == len(relabel)
    assert sorted(c for c in relabel if c >= 0) == list(range(width))


@pytest.mark.parametrize("first", [0, 1, 700, 701, 2999, 3000])
def test_compiled_columns_read_packed_32_bit_hashes_as_their_int64_values(first: int) -> None:
    """The packed hashes as stored (little-endian uint32) get the columns their values
    widened to int64 get: read in place from one buffer, or node by node from a list of
    each node's bytes, as if joined (`first` anywhere, inside a node or between two)."""
    compiled = pytest.importorskip("monitor._shinglehash", reason="not built here")
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2**32, 400, dtype=np.uint64)
    packed_hashes = values[rng.integers(0, len(values), 3000)].astype(PACKED).tobytes()
    cuts = sorted({0, *(4 * int(c) for c in rng.integers(0, 3001, 60)), 12000})
    nodes = [packed_hashes[a:b] for a, b in pairwise(cuts)]
    inputs = [as_array(packed_hashes), np.frombuffer(packed_hashes, dtype=PACKED), nodes]
    outs = [np.full(3000, -7, dtype=np.int32) for _ in inputs]
    widths = {compiled.number_columns(h, first, out) for h, out in zip(inputs, outs, strict=True)}
    assert len(widths) == 1
    assert outs[0].tolist() == outs[1].tolist() == outs[2].tolist()


def test_compiled_columns_refuse_mismatched_buffers() -> None:
    compiled = pytest.importorskip("monitor._shinglehash", reason="not built here")
    hashes = np.arange(10, dtype=np.int64)
    with pytest.raises(ValueError, match="int32 out"):
        compiled.number_columns(hashes, 0, np.empty(10, dtype=np.int64))
    with pytest.raises(ValueError, match="first"):
        compiled.number_columns(hashes, 11, np.empty(10, dtype=np.int32))
    with pytest.raises(TypeError):
        compiled.number_columns(hashes, 0)
    with pytest.raises(ValueError, match="32- or 64-bit"):
        compiled.number_columns(hashes.astype(np.int16), 0, np.empty(10, dtype=np.int32))
    for nodes in ([b"\0" * 8, "text"], [b"\0" * 6]):
        with pytest.raises(ValueError, match="bytes of packed 32-bit hashes"):
            compiled.number_columns(nodes, 0, np.empty(2, dtype=np.int32))
    with pytest.raises(ValueError, match="int32 out as long"):
        compiled.number_columns([b"\0" * 8, b"\0" * 4], 0, np.empty(2, dtype=np.int32))


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_ascii_words_equal_the_regex_on_the_casefolded_text(text: str) -> None:
    assert story_text._all_words(text) == story_text._WORD.findall(text.casefold())


def test_word_hashes_take_any_string_without_raising() -> None:
    """A stored value that is not what `story_words` writes (a lone surrogate, control
    characters) still hashes, word for word."""
    texts = ["ok \ud800x tail", "\x00a\x1fb", "last"]
    assert [len(h) for h in word_hashes(texts)] == [3, 2, 1]


def test_a_parse_worker_takes_story_shingles_without_numpy() -> None:
    """Workers import what `parse_and_normalise` needs; story shingles must not pull in the
    decision's numpy."""
    code = """
import sys
from datetime import UTC, datetime
from monitor.parsejob import parse_and_normalise
rss = b'<rss version="2.0"><channel><title>t</title><item><guid>1</guid>' \\
      b'<title>Envoys meet in Geneva</title><description>Talks resume</description></item>' \\
      b'</channel></rss>'
now = datetime.now(UTC)
out = parse_and_normalise(rss, "http://example.org/f", {}, now, 10, None, stories=True)
assert out.shingles and out.shingles[0], out
print("numpy" in sys.modules)
"""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert done.stdout.strip() == "False", done.stderr


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 3)), max_size=40, unique_by=lambda t: t[0]
    )
)
def test_processing_order_is_by_appearance_then_id_whatever_the_input_order(
    stamps: list[tuple[int, int]],
) -> None:
    """Few distinct times, so ties are common; ids come in any order."""
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    batch = [_prepared(i, {"talks"}, t0 + timedelta(hours=h)) for i, h in stamps]
    ordered = processing_order(batch)
    assert [(p.appeared_at, p.item_id) for p in ordered] == sorted(
        (p.appeared_at, p.item_id) for p in batch
    )
