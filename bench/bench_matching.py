"""Benchmark: matching throughput as the watchlist grows, and the automaton against spaCy.

Run: python bench/bench_matching.py   (prints Markdown tables)
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.match import Matcher, PhraseIndex, _entries, prepare, token_key  # noqa: E402
from monitor.similarity import load_seed_index  # noqa: E402
from monitor.watchlist import Actor, Phrase, Watchlist, load_watchlist  # noqa: E402

#: Up to the base watchlist's size (1,319 phrases) a row is a subset of it; above, the whole of it
#: plus synthetic names that never occur: the rows from 5,000 on show the cost flat in phrases.
SIZES = (150, 1_000, 5_000, 20_000)
REPEAT = 5


def items() -> list[tuple[str, str]]:
    """Realistic items of 40-150 words: the eval set plus paragraphs of the seed documents."""
    out: list[tuple[str, str]] = []
    eval_path = ROOT / "tests/data/eval/items.jsonl"
    if eval_path.exists():
        for line in eval_path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.append((row["title"], row["summary"]))
    for doc in sorted((ROOT / "corpus").glob("*.txt")):
        for para in doc.read_text(encoding="utf-8").split("\n"):
            words = para.split()
            if 40 <= len(words) <= 150:
                out.append((" ".join(words[:8]), para))
    return out


def synthetic_actors(n_phrases: int, rng: random.Random) -> tuple[Actor, ...]:
    syllables = [
        "ka",
        "lo",
        "mi",
        "ra",
        "ven",
        "dor",
        "tus",
        "pel",
        "sha",
        "nik",
        "bor",
        "gal",
        "tem",
        "vi",
        "zan",
        "ul",
        "or",
    ]
    actors = []
    for i in range(n_phrases // 2):
        first = "".join(rng.choice(syllables) for _ in range(2)).title()
        last = "".join(rng.choice(syllables) for _ in range(3)).title()
        aliases = (Phrase(f"{first} {last}"), Phrase(f"{last}{i}"))
        actors.append(
            Actor(f"synthetic_{i}", f"{first} {last}", "person", aliases, False, (), (), "curated")
        )
    return tuple(actors)


def grown(base: Watchlist, phrases: int, rng: random.Random) -> Watchlist:
    have = len(_entries(base))
    if phrases <= have:
        keep = phrases / have
        actors = tuple(replace(a, exclude=()) for a in base.actors[: int(len(base.actors) * keep)])
        topics = tuple(
            replace(t, terms=t.terms[: max(1, int(len(t.terms) * keep))], exclude=())
            for t in base.topics
        )
        return replace(base, actors=actors, topics=topics)
    return replace(base, actors=base.actors + synthetic_actors(phrases - have, rng))


def rate(call: Callable[..., object], texts: Sequence[tuple[Any, ...]]) -> float:
    """Items per second of CPU time (best of REPEAT), so other load on the machine counts less;
    `call` gets each tuple's values as arguments."""
    best = float("inf")
    for _ in range(REPEAT):
        start = time.process_time()
        for args in texts:
            call(*args)
        best = min(best, time.process_time() - start)
    return len(texts) / best


def main() -> None:
    rng = random.Random(7)
    base = load_watchlist(ROOT / "config/watchlist.yaml")
    seeds = load_seed_index(ROOT / "corpus")
    texts = items()
    words = sum(len((t + " " + s).split()) for t, s in texts) / len(texts)
    print(f"{len(texts)} items, {words:.0f} words on average\n")
    print(
        "| phrases | compile ms | match items/s (stream: lean) "
        "| match_text items/s (explained) | automaton only items/s |"
    )
    print("|---:|---:|---:|---:|---:|")
    for size in SIZES:
        wl = grown(base, size, rng)
        t0 = time.perf_counter()
        matcher = Matcher.compile(wl, seeds)
        compile_ms = (time.perf_counter() - t0) * 1000
        lean, full, raw = rates(matcher, texts)
        print(
            f"| {matcher.phrase_count} | {compile_ms:.0f} | {lean:,.0f} | {full:,.0f} "
            f"| {raw:,.0f} |"
        )
    stream_mix(Matcher.compile(base, seeds), texts)
    spacy_vs_automaton(base, texts)


def rates(matcher: Matcher, texts: list[tuple[str, str]]) -> tuple[float, float, float]:
    """Items/s of the lean path, of the explained path, and of phrase finding alone."""
    lean = rate(lambda t, s: matcher.match_text(t, s, explain=False), texts)
    full = rate(lambda t, s: matcher.match_text(t, s), texts)
    raw = rate(lambda t, s: (matcher.raw_hits(t), matcher.raw_hits(s)), texts)
    return lean, full, raw


def stream_mix(matcher: Matcher, texts: list[tuple[str, str]]) -> None:
    """The stream's case: most items fail (many after a hit on a generic actor), ~15 % match."""
    verdicts = [matcher.match_text(t, s) for t, s in texts]
    failing = [x for x, r in zip(texts, verdicts, strict=True) if not r.matched]
    matching = [x for x, r in zip(texts, verdicts, strict=True) if r.matched]
    mix = failing + matching[: round(len(failing) * 15 / 85)]
    with_hits = sum(1 for x, r in zip(texts, verdicts, strict=True) if r.hits and not r.matched)
    lean = rate(lambda t, s: matcher.match_text(t, s, explain=False), mix)
    full = rate(lambda t, s: matcher.match_text(t, s), mix)
    print(f"\n| stream-like mix: {len(mix)} items, 15 % matching | items/s |")
    print("|---|---:|")
    print(f"| lean (`match`, the pipeline's path) | {lean:,.0f} |")
    print(f"| explained (`match_text`) | {full:,.0f} |")
    print(f"\n({with_hits} of the failing items have hits that the rules or threshold turn down.)")


def spacy_vs_automaton(base: Watchlist, texts: list[tuple[str, str]]) -> None:
    import spacy
    from spacy.matcher import PhraseMatcher
    from spacy.tokens import Doc

    nlp = spacy.blank("en")
    entries = _entries(base)
    pm = PhraseMatcher(nlp.vocab, attr="NORM")

    def normed(text: str) -> Doc:
        doc = nlp.make_doc(prepare(text))
        for tok in doc:
            tok.norm_ = "\x00" if tok.is_space else token_key(tok.text)
        return doc

    for i, e in enumerate(entries):
        pm.add(str(i), [normed(e.phrase)])
    index = PhraseIndex(entries)
    spacy_rate = rate(lambda t, s: (pm(normed(t)), pm(normed(s))), texts)
    ours = rate(lambda t, s: (index.find(t), index.find(s)), texts)
    print(f"\n| phrase finding ({len(entries)} phrases) | items/s |")
    print("|---|---:|")
    print(f"| spaCy blank tokenizer + PhraseMatcher(NORM) | {spacy_rate:,.0f} |")
    print(f"| regex tokenizer + first-token automaton | {ours:,.0f} |")


if __name__ == "__main__":
    main()
