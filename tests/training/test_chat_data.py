"""The generated DJ-battle chat corpus and the hand-written gold set (training.datasets.chat)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from djserve.specs.sentiment import LABELS
from training.datasets import chat
from training.datasets.chat_lang import LANGUAGES

SIX = {"es", "en", "pt", "fr", "de", "it"}


def _fold(text: str) -> str:
    return chat._strip_accents(text).lower()


@pytest.fixture(scope="module")
def rows() -> list[chat.ChatLine]:
    return chat.generate()


@pytest.fixture(scope="module")
def reference_rows() -> list[chat.ChatLine]:
    """The corpus size the reference profile trains on."""
    return chat.generate(chat.ChatParams(lines_per_language=4800))


def test_generation_is_deterministic_and_hashed():
    params = chat.ChatParams(seed=3, lines_per_language=300)
    a, b = chat.generate(params), chat.generate(params)
    assert a == b and chat.content_hash(a, params) == chat.content_hash(b, params)
    other = chat.ChatParams(seed=4, lines_per_language=300)
    assert chat.content_hash(chat.generate(other), other) != chat.content_hash(a, params)


def test_every_language_and_label_in_every_split_and_balanced(rows):
    counts = Counter((r.language, r.label, r.split) for r in rows)
    assert {r.language for r in rows} >= SIX
    for lang in SIX:
        for split in chat.SPLITS:
            assert all(counts[(lang, label, split)] > 0 for label in LABELS), (lang, split)
        total = sum(counts[(lang, label, s)] for label in LABELS for s in chat.SPLITS)
        assert 1000 <= total <= 1500, (lang, total)
        for label in LABELS:
            share = sum(counts[(lang, label, s)] for s in chat.SPLITS) / total
            assert 0.28 < share < 0.39, (lang, label, share)


def test_every_template_belongs_to_one_split_about_30_percent_heldout(rows):
    splits_of = defaultdict(set)
    for r in rows:
        splits_of[r.template].add(r.split)
    assert all(len(s) == 1 for s in splits_of.values()), {t: s for t, s in splits_of.items() if len(s) > 1}
    for code, lang in LANGUAGES.items():
        assignment = chat.template_splits(lang, chat.ChatParams())
        for kind in chat.KINDS:
            ids = [t for t in assignment if t.startswith(f"{code}.{kind}.")]
            held = sum(assignment[t] == "heldout" for t in ids) / len(ids)
            assert 0.25 <= held <= 0.35, (code, kind, held)
    lines = defaultdict(set)
    for r in rows:
        lines[r.split == "heldout"].add(r.text)
    assert not lines[True] & lines[False], "a held-out line also occurs in training"


def test_no_heldout_filler_occurs_in_training_or_validation(rows):
    seen = "\n".join(_fold(r.text) for r in rows if r.split != "heldout")
    held = {w for lang in LANGUAGES.values() for w in chat.filler_words(lang, "heldout")}
    assert len(held) > 100
    leaks = [w for w in held if re.search(r"(?<!\w)" + re.escape(_fold(w)) + r"(?!\w)", seen)]
    assert not leaks
    used = {w for w in held if re.search(r"(?<!\w)" + re.escape(_fold(w)) + r"(?!\w)", "\n".join(
        _fold(r.text) for r in rows if r.split == "heldout"))}
    assert len(used) > 0.8 * len(held), "held-out fillers are barely used"


@pytest.mark.parametrize(
    "language, phrase, label",
    [
        ("en", "not bad", "positive"), ("en", "not great", "negative"),
        ("es", "nada mal", "positive"), ("es", "no me gusta", "negative"),
        ("pt", "nada mal", "positive"), ("pt", "nao gostei", "negative"),
        ("fr", "pas mal", "positive"), ("fr", "pas terrible", "negative"),
        ("de", "nicht schlecht", "positive"), ("de", "gar nicht gut", "negative"),
        ("it", "niente male", "positive"), ("it", "non mi piace", "negative"),
    ],
)
def test_negation_is_labelled_as_meant(reference_rows, language, phrase, label):
    hits = [r for r in reference_rows if r.language == language and re.search(rf"\b{phrase}\b", _fold(r.text))]
    assert len(hits) >= 5, f"{phrase!r} is rare in {language}"
    assert {r.label for r in hits} == {label}, [r.text for r in hits if r.label != label][:5]


def test_a_plain_negative_word_stays_negative(rows):
    plain = [r for r in rows if r.language == "en" and re.search(r"(?<!not )\bbad\b", _fold(r.text))]
    assert plain and {r.label for r in plain} == {"negative"}


def test_gold_set_parses_covers_every_language_and_is_not_generated(rows, reference_rows):
    gold = chat.load_gold()
    assert {r.split for r in gold} == {"gold"}
    for lang in SIX:
        mine = [r for r in gold if r.language == lang]
        assert len(mine) >= 50, lang
        assert {r.label for r in mine} == set(LABELS), lang
    generated = {" ".join(_fold(r.text).split()) for r in rows + reference_rows}
    assert not [r.text for r in gold if " ".join(_fold(r.text).split()) in generated]


def test_gold_file_rejects_a_bad_row(tmp_path):
    bad = tmp_path / "gold.tsv"
    bad.write_text("language\tlabel\ttext\nes\tcontento\thola\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad row"):
        chat.load_gold(bad)
