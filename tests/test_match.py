"""Matcher behaviour: normalisation, inflection, context and exclusion rules, scores, evidence."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from monitor.errors import WatchlistError
from monitor.match import Matcher, MatcherCache, evidence_from_json, evidence_to_json, token_key
from monitor.similarity import SeedIndex, load_seed_index
from monitor.watchlist import load_watchlist

ROOT = Path(__file__).resolve().parent.parent

SMALL = """\
version: 1
defaults:
  threshold: 2.0
actors:
  - id: zelensky
    name: Volodymyr Zelensky
    type: person
    aliases: [Zelensky, Zelenskyy, {text: Зеленский, lang: ru}, {text: Зеленський, lang: uk}]
  - id: kyiv
    name: Kyiv
    type: place
    aliases: [Kyiv, Kiev, {text: Киев, lang: ru}, {text: Київ, lang: uk}, {text: Києва, lang: uk}]
    exclude: [chicken Kiev]
  - id: lavrov
    name: Sergey Lavrov
    type: person
    aliases: [Lavrov, {text: Лавров, lang: ru}]
  - id: umerov
    name: Rustem Umerov
    type: person
    aliases: [{text: Умеров, lang: ru}]
  - id: trump
    name: Donald Trump
    type: person
    aliases: [Trump]
    needs_context: true
  - id: medvedev
    name: Dmitry Medvedev
    type: person
    aliases: [Dmitry Medvedev, {text: Medvedev, needs_context: true}]
    exclude: [tennis, Daniil]
  - id: putin
    name: Vladimir Putin
    type: person
    aliases: [Putin]
  - id: old
    name: Rejected one
    type: person
    aliases: [Rejected Name]
    status: rejected
topics:
  - id: ceasefire
    name: Ceasefire
    terms: [ceasefire, truce, {text: перемирие, lang: ru}, {text: перемир'я, lang: uk}]
    needs_context: true
    exclude: [Gaza, Hamas]
  - id: negotiations
    name: Talks
    terms: [talks, negotiations, {text: переговоры, lang: ru}, {text: переговори, lang: uk}]
    actors: []
"""


@pytest.fixture
def small(tmp_path: Path) -> Matcher:
    path = tmp_path / "watchlist.yaml"
    path.write_text(SMALL, encoding="utf-8")
    return Matcher.compile(load_watchlist(path), None)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Зеленский", "Зеленского"),
        ("Зеленский", "Зеленскому"),
        ("Киев", "Киеве"),
        ("Києва", "Києві"),
        ("переговоры", "переговоров"),
        ("перемирие", "перемирия"),
        ("Лавров", "Лавровым"),
        ("Лавров", "Лаврова"),
        ("санкции", "санкций"),
        ("sanctions", "sanction"),
        ("Zelenskyy", "ZELENSKYY"),
    ],
)
def test_inflected_forms_share_a_key(a: str, b: str) -> None:
    assert token_key(a) == token_key(b)


def test_names_keep_their_surname_suffix() -> None:
    assert token_key("Умеров") != token_key("умер")


def test_possessive_and_apostrophes_and_yo(small: Matcher) -> None:
    r = small.match_text("Zelensky’s and Kyiv's envoys in talks", "Ещё Зеленский")
    texts = {(h.target, h.text) for h in r.hits}
    assert ("zelensky", "Zelensky") in texts
    assert ("kyiv", "Kyiv") in texts
    # offsets point into the original text
    for h in r.hits:
        src = r.snippet  # the snippet marks every hit
        assert f"**{h.text}" in src


def test_hits_have_original_offsets(small: Matcher) -> None:
    title = "Переговоры: Зеленский в Киеве"
    r = small.match_text(title)
    for h in r.hits:
        assert title[h.start : h.end] == h.text
    assert {h.target for h in r.hits} == {"negotiations", "zelensky", "kyiv"}


def test_ukrainian_inflection_and_apostrophe(small: Matcher) -> None:
    r = small.match_text("Зеленському запропонували перемир’я", "У Києві говорять про переговори")
    assert r.matched
    assert set(r.actors) == {"zelensky", "kyiv"}
    assert "ceasefire" in r.topics


def test_needs_context_actor_alone_does_not_count(small: Matcher) -> None:
    r = small.match_text("Trump signs order on education")
    assert not r.matched
    assert r.actors == ()
    assert any("trump" in n and "needs context" in n for n in r.notes)


def test_needs_context_actor_counts_with_an_independent_hit(small: Matcher) -> None:
    r = small.match_text("Trump and Zelensky hold talks")
    assert "trump" in r.actors
    assert r.matched


def test_alias_level_context_and_exclusion(small: Matcher) -> None:
    tennis = small.match_text("Medvedev beats Sinner", "Daniil Medvedev won the tennis final")
    assert tennis.actors == ()
    politician = small.match_text("Dmitry Medvedev threatens Kyiv", "")
    assert "medvedev" in politician.actors


def test_exclusion_is_overridden_by_strong_independent_evidence(small: Matcher) -> None:
    weak = small.match_text("Chicken Kiev recipe", "A classic dish")
    assert "kyiv" not in weak.actors
    assert any("excluded" in n for n in weak.notes)
    strong = small.match_text("Putin and Zelensky near Kiev", "Lavrov skipped chicken Kiev")
    assert "kyiv" in strong.actors


def test_topic_needs_context(small: Matcher) -> None:
    r = small.match_text("Ceasefire holds", "A truce was agreed")
    assert not r.matched
    score = next(s for s in r.topic_scores if s.topic == "ceasefire")
    assert score.notes and not score.passed


def test_topic_exclusion_vetoes_gaza_ceasefire(small: Matcher) -> None:
    r = small.match_text("Gaza ceasefire takes effect", "Putin said the truce matters")
    score = next(s for s in r.topic_scores if s.topic == "ceasefire")
    assert any("vetoed" in n for n in score.notes)
    assert "ceasefire" not in r.topics


def test_score_parts_add_up_and_title_weighs_more(small: Matcher) -> None:
    in_title = small.match_text("Zelensky calls for ceasefire", "")
    in_body = small.match_text("", "Zelensky calls for ceasefire")
    a = next(s for s in in_title.topic_scores if s.topic == "ceasefire")
    b = next(s for s in in_body.topic_scores if s.topic == "ceasefire")
    assert a.score == pytest.approx(sum(a.parts.values()), abs=0.01)
    assert a.score > b.score
    assert a.parts["title"] > 0 and b.parts["title"] == 0


def test_rejected_entries_never_match(small: Matcher) -> None:
    assert not small.match_text("Rejected Name speaks").hits


def test_snippet_marks_hits_and_takes_densest_window(small: Matcher) -> None:
    filler = "Nothing here. " * 40
    r = small.match_text("Talks", filler + "Zelensky agreed a truce with Putin. " + filler)
    assert r.snippet.startswith("**Talks** — …")
    assert "**Zelensky**" in r.snippet and "**truce**" in r.snippet
    assert len(r.snippet) < 300


def test_evidence_roundtrip_is_json(small: Matcher) -> None:
    r = small.match_text("Zelensky calls for ceasefire", "Trump and Putin discuss talks")
    data = json.loads(json.dumps(evidence_to_json(r)))
    assert set(data) >= {"hits", "topic_scores", "snippet", "nearest_seed", "watchlist_version"}
    assert evidence_from_json(data) == r


def test_seed_similarity_only_for_items_with_hits(small: Matcher) -> None:
    seeds = SeedIndex.build({"a": "ceasefire talks Kyiv Moscow memorandum", "b": "football"})
    m = Matcher.compile(small.watchlist, seeds)
    hit = m.match_text("Zelensky rejects memorandum", "talks on ceasefire")
    assert hit.nearest_seed == "a" and hit.seed_similarity > 0
    assert next(iter(hit.topic_scores)).parts["similarity"] > 0
    miss = m.match_text("Football memorandum", "")
    assert miss.nearest_seed is None and miss.seed_similarity == 0.0


def test_seed_index_on_the_corpus() -> None:
    index = load_seed_index(ROOT / "corpus")
    name, sim = index.nearest("Lavrov and Blinken met in Geneva on draft treaties and NATO")
    assert name == "004_97eb26cc02a4f870" and 0 < sim <= 1
    name, _ = index.nearest("Medinsky and Umerov in Istanbul: the memorandum and ceasefire")
    assert name == "002_c721cbb01b32f9fd"


def test_matcher_is_thread_safe(small: Matcher) -> None:
    texts = [f"Zelensky and Putin talks round {i}" for i in range(50)]
    expected = [small.match_text(t) for t in texts]
    results: list[list[object]] = [[] for _ in range(4)]

    def work(slot: int) -> None:
        results[slot] = [small.match_text(t) for t in texts]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results)


def test_cache_recompiles_only_on_change_and_keeps_old_on_error(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text(SMALL, encoding="utf-8")
    cache = MatcherCache(None)
    first = cache.reload(path)
    assert cache.reload(path) is first
    path.write_text(SMALL, encoding="utf-8")  # same content, new mtime
    assert cache.reload(path) is first and cache.compilations == 1
    path.write_text(SMALL.replace("threshold: 2.0", "threshold: 3.0"), encoding="utf-8")
    second = cache.reload(path)
    assert second is not first and second.watchlist.threshold == 3.0
    path.write_text(SMALL + "  - id: broken\n    bogus: 1\n", encoding="utf-8")
    with pytest.raises(WatchlistError) as e:
        cache.reload(path)
    assert "watchlist.yaml" in str(e.value)
    assert cache.matcher is second


def test_default_watchlist_traps() -> None:
    m = Matcher.compile(load_watchlist(ROOT / "config" / "watchlist.yaml"), None)
    cases = {
        "Witkoff says Gaza hostage talks in Doha 'positive'": False,
        "Putin announces family mortgage extension": False,
        "Medvedev falls to Sinner in Melbourne final": False,
        "Trump raises tariffs on Chinese goods": False,
        "Witkoff meets Putin in Moscow on Ukraine peace plan": True,
        "Зеленский: переговоры с Россией возможны только после вывода войск": True,
        "Зеленський заявив про готовність до перемир'я з Росією": True,
    }
    for title, expected in cases.items():
        assert m.match_text(title).matched is expected, title


# --- generalisation: anchors without terms, paraphrases, implicit context --------------------

ANCHORED = """\
version: 1
defaults:
  threshold: 2.0
actors:
  - {id: russia, name: Russia, type: country, aliases: [Russia]}
  - {id: kyiv, name: Kyiv, type: place, aliases: [Kyiv]}
  - {id: lviv, name: Lviv, type: place, aliases: [Lviv]}
  - {id: zelensky, name: Zelensky, type: person, aliases: [Zelensky]}
  - {id: plant, name: The plant, type: place, aliases: [Plant Alpha]}
  - {id: operator, name: Operator, type: org, aliases: [Alphatom]}
  - {id: envoy, name: Envoy, type: person, aliases: [Envoy Smith], needs_context: true}
topics:
  - id: plant_watch
    name: The plant
    terms: [reactor]
    actors: [plant, operator, envoy, lviv]
    needs_context: true
    context: [plant, operator, russia, kyiv, zelensky, envoy, lviv]
"""


@pytest.fixture
def anchored(tmp_path: Path) -> Matcher:
    path = tmp_path / "watchlist.yaml"
    path.write_text(ANCHORED, encoding="utf-8")
    return Matcher.compile(load_watchlist(path), None)


@pytest.mark.parametrize(
    ("title", "summary", "expected"),
    [
        ("Plant Alpha staff rotated", "", False),  # one anchor alone, even in the title
        ("Plant Alpha staff rotated", "Russia said so.", False),  # plus a country
        ("Plant Alpha staff rotated", "Officials in Kyiv said so.", False),  # plus a place
        ("Plant Alpha staff rotated", "Lviv officials said so.", True),  # two anchors
        ("", "Alphatom says Plant Alpha lost power.", True),  # two anchors, summary only
        ("", "Zelensky says Plant Alpha lost power.", True),  # anchor + context person
        ("", "Envoy Smith visited Zelensky at Plant Alpha.", True),  # weak anchor with context
        ("", "Russia says Plant Alpha reactor stopped.", True),  # a term brings it up as before
    ],
)
def test_anchor_actors_raise_a_topic_without_terms(
    anchored: Matcher, title: str, summary: str, expected: bool
) -> None:
    result = anchored.match_text(title, summary)
    assert result.matched is expected, [(s.score, s.notes) for s in result.topic_scores]


def test_single_anchor_leaves_a_note_and_anchors_weigh_more(anchored: Matcher) -> None:
    alone = anchored.match_text("", "Plant Alpha staff rotated")
    (score,) = alone.topic_scores
    assert any("no term" in n for n in score.notes) and not score.passed
    pair = anchored.match_text("", "Alphatom and Zelensky discussed it")
    (paired,) = pair.topic_scores
    assert paired.parts["actors"] == pytest.approx(1.0 + 0.75)  # anchor, then context person
    assert paired.score == pytest.approx(sum(paired.parts.values()), abs=0.01)


@pytest.fixture(scope="module")
def default() -> Matcher:
    return Matcher.compile(load_watchlist(ROOT / "config" / "watchlist.yaml"), None)


def _check(matcher: Matcher, cases: list[tuple[str, str, str | None]]) -> None:
    """Each case: title, summary, and the topic it must match (None: must not match)."""
    for title, summary, topic in cases:
        r = matcher.match_text(title, summary)
        if topic is None:
            assert not r.matched, (title, r.topics, r.actors)
        else:
            assert topic in r.topics, (title, [(s.topic, s.score, s.notes) for s in r.topic_scores])


def test_nuclear_plant_from_its_anchors_alone(default: Matcher) -> None:
    _check(
        default,
        [
            ("Energoatom: Enerhodar staff told to sign new contracts", "", "nuclear_plant"),
            ("Grossi: IAEA team rotated at the site after a delay", "", "nuclear_plant"),
            (
                "Nuclear watchdog chief worried about Europe's largest atomic station",
                "",
                "nuclear_plant",
            ),
            ("Гросси: МАГАТЭ сохранит присутствие на станции", "", "nuclear_plant"),
            ("Енергоатом: в Енергодарі знову зник зв'язок", "", "nuclear_plant"),
            ("Энергоатом сообщил о давлении на персонал в Энергодаре", "", "nuclear_plant"),
            # hard negatives: the watchdog elsewhere
            ("Grossi says Iran must let inspectors back", "The IAEA chief spoke in Vienna.", None),
            ("Grossi announces a bid for UN secretary-general", "", None),
            ("IAEA approves new safety standards", "Guidance covers small modular reactors.", None),
            ("МАГАТЭ обсудило иранскую ядерную программу", "Гросси выступил в Вене.", None),
        ],
    )


def test_negotiations_from_delegation_heads(default: Matcher) -> None:
    _check(
        default,
        [
            ("Medinsky and Umerov to meet again next week", "", "negotiations"),
            ("Мединский и Умеров обменялись документами", "", "negotiations"),
            ("Мєдінський та Умєров знову зустрінуться", "", "negotiations"),
            ("Дзуппи обсудил с Ушаковым возвращение детей", "", "negotiations"),
            ("Qatar helps return deported children to Ukraine", "", "negotiations"),
            (
                "Україна повернула ще 20 депортованих дітей",
                "Посередником виступив Катар.",
                "negotiations",
            ),
            ("Medinsky opens a military history museum in Russia", "", None),
            (
                "Putin chairs a Security Council meeting in Moscow",
                "The Russian leader spoke.",
                None,
            ),
        ],
    )


def test_paraphrases_in_three_languages(default: Matcher) -> None:
    _check(
        default,
        [
            ("Kremlin rails against the alliance's eastward advance", "", "nato_expansion"),
            ("Кремль против продвижения альянса на восток", "", "nato_expansion"),
            (
                "Зеленський: розширення альянсу зміцнить Європу",
                "Він закликав НАТО.",
                "nato_expansion",
            ),
            ("Think tank: Moscow fears the fragmentation of Russia", "", "russia_collapse"),
            ("Эксперт: распад России не выгоден Западу", "", "russia_collapse"),
            ("Розпад росії: чи готовий Захід", "", "russia_collapse"),
            ("EU agrees reparations loan backed by immobilised Russian assets", "", "sanctions"),
            ("ЕС обсуждает репарационный кредит за счет российских активов", "", "sanctions"),
            ("ЄС погодив репараційний кредит з російських активів", "", "sanctions"),
            (
                "Energy truce: both sides report violations",
                "Kyiv and the Kremlin trade blame.",
                "ceasefire",
            ),
            (
                "Режим тишины на Пасху нарушен",
                "ВСУ и российские войска обвиняют друг друга.",
                "ceasefire",
            ),
            (
                "Мораторій на удари по енергетиці не діє",
                "У ЗСУ заявили про нові атаки.",
                "ceasefire",
            ),
            ("The Russian leader hints at concessions in the occupied south", "", "territory"),
            ("The Bankova rejects the proposal of Moscow's envoy", "", "us_mediation"),
        ],
    )


def test_prisoner_exchange_with_implicit_anchors(default: Matcher) -> None:
    _check(
        default,
        [
            (
                "150 defenders returned home from captivity",
                "The Coordination HQ confirmed it.",
                "prisoner_exchange",
            ),
            (
                "Додому з полону повернулися 150 військових",
                "Так повідомив Координаційний штаб.",
                "prisoner_exchange",
            ),
            ("Лубінець і Москалькова домовилися про повернення цивільних", "", "prisoner_exchange"),
            ("Москалькова: из плена вернулись 90 военнослужащих", "", "prisoner_exchange"),
            ("Lubinets: 84 servicemen came home from captivity", "", "prisoner_exchange"),
        ],
    )


def test_new_vocabulary_keeps_hard_negatives_out(default: Matcher) -> None:
    _check(
        default,
        [
            (
                "Russian rock band announces break-up",
                "Their farewell concert tour ends in Moscow.",
                None,
            ),
            ("Football club owner's frozen assets released by court", "", None),
            ("UK energy price cap rises in October", "Ofgem says household bills go up.", None),
            (
                "Ukraine remains committed to reforms, says minister",
                "Work towards EU accession goes on.",
                None,
            ),
            ("Kharkiv philharmonic reopens", "Musicians from Kyiv attended the concert.", None),
            (
                "NATO jets scramble as Russian bombers near Alaska",
                "They stayed in international airspace.",
                None,
            ),
            ("Trump meets Zelensky in New York", "The two leaders shook hands.", None),
            ("Сім'я з Києва відсвяткувала весілля на півострові", "", None),
        ],
    )


def test_a_pickled_matcher_matches_as_the_compiled_one() -> None:
    """Parse workers receive the parent's compiled matcher pickled: it must give the same
    results on every labelled item, with the compiled pass rebuilt and the memos left out."""
    import pickle

    from monitor.evaluate import load_eval_items
    from monitor.match import compiled

    matcher = Matcher.compile(
        load_watchlist(ROOT / "config" / "watchlist.yaml"), load_seed_index(ROOT / "corpus")
    )
    fresh_size = len(pickle.dumps(matcher))
    items = load_eval_items(ROOT / "tests" / "data" / "eval")
    expected = [matcher.match_text(i.title, i.summary, lang=i.lang) for i in items]
    assert sum(r.matched for r in expected) > 50
    assert len(pickle.dumps(matcher)) == fresh_size, "warm memos are not pickled"
    loaded = pickle.loads(pickle.dumps(matcher))
    assert loaded.watchlist == matcher.watchlist and loaded.phrase_count == matcher.phrase_count
    assert (loaded._index._scanner is not None) == compiled()
    assert [loaded.match_text(i.title, i.summary, lang=i.lang) for i in items] == expected
