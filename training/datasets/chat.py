"""Labelled DJ-battle live chat in six languages, generated from templates (sentiment).

Each language module in `chat_lang/` holds templates, a sentiment lexicon and filler vocabularies.
A template is filled from those tables, then typed the way chat is typed: lower case or CAPS,
elongated words ("INCREÍBLEEE"), dropped accents, typos, varied punctuation, trailing emoji,
@mentions. The noise is the same whatever the label, so case, punctuation and length do not give
the label away.

Template kinds. "positive" / "negative" / "neutral" templates carry their own phrasing ("what a
train wreck", "se le fue la olla", "is this being recorded?"). Shared frames are filled per label:
"any" frames get all three ("{this} {noun} is {adj}" -> "...is fire" / "...is boring" / "...is on
vinyl"), "polar" frames positive and negative ("{verb} {this} {noun}" -> "I love" / "I hate").
Without them each label would have its own shapes and a model could learn the shapes instead of
the words; they get `shared_weight` times the lines of a label-specific template.

Splits (held-out lines are phrasings and names the model has never seen):
- Templates: every template belongs to exactly one split. Per language and kind, a fixed shuffle
  (`split_seed`, not the sampling seed, so held-out sets of different seeds are comparable) puts
  30% of the templates in "heldout", 12% of the rest in "val" and the remainder in "train".
- Fillers (DJ names, tracks and artists, times, @users, places, greetings, DJ-craft nouns) are
  partitioned in the tables: a held-out value never occurs in a train or val line. The training
  side adds names invented from syllables, so a name never read before reads as a name. Small
  numbers (round 2, in 5 min) are generic and shared.
- The core sentiment lexicon (adjectives, exclamations, intensifiers, negated phrases such as
  "not bad" / "nada mal", emoji) is shared by all splits: a model trained from scratch cannot know
  a sentiment word it has never read. What is held out is the phrasing: each template carries its
  own multiword expressions, written once.
- A generated line identical to a training or validation line is dropped from "heldout".

Labels. Negation is in the lexicon so labels stay right: "not bad" / "nada mal" / "nicht schlecht"
are positive, "not great" / "no me gusta" / "gar nicht gut" negative, and neutral templates negate
too ("no idea who won round 2"). Most wordless idioms ("{dj} lost the crowd") also get a sentiment
word or emoji (`cue_rate`), as most chat verdicts do. No sarcasm: its label is unknowable.

The hand-written `chat_gold.tsv` (language, label, text) is never generated and never trained on;
`load_gold` reads it for evaluation only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

from djserve.specs.sentiment import LABELS
from training.datasets.chat_lang import LANGUAGES, common

GENERATOR_VERSION = "chat-2"
SPLITS = ("train", "val", "heldout")
KINDS = {
    "positive": ("positive",),
    "negative": ("negative",),
    "neutral": ("neutral",),
    "any": LABELS,
    "polar": ("positive", "negative"),
}
"""Template kind -> the labels its lines get. "any" and "polar" frames are shared by labels."""
_PREFIX = {"positive": "pos", "negative": "neg", "neutral": "neu"}
_NEGATED = {"positive": "neg_of_neg", "negative": "neg_of_pos"}  # {negd}: "not bad" / "not great"
GOLD = Path(__file__).parent / "chat_gold.tsv"

_SLOT = re.compile(r"\{(\w+)\}")
_VOWELS = "aeiouyáéíóúàèìòùâêîôûãõäöü"


@dataclass(frozen=True)
class ChatLine:
    text: str
    label: str
    """One of djserve.specs.sentiment.LABELS."""
    language: str
    """ISO 639-1 code of the line's main language."""
    template: str
    """"<language>.<kind>.<index>" (kind: a label, "any" or "polar"), or "gold" for hand-written lines."""
    split: str
    """"train", "val", "heldout" or "gold"."""


@dataclass(frozen=True)
class ChatParams:
    seed: int = 0
    lines_per_language: int = 1200
    heldout_fraction: float = 0.3
    val_fraction: float = 0.12
    """Share of the training templates carved off as validation templates."""
    split_seed: int = 451
    """Which templates are held out; fixed so held-out sets of different seeds are comparable."""
    cue_rate: float = 0.9
    """Share of lines from a wordless idiom ("{dj} lost the crowd") that also carry a sentiment
    word or emoji, as most chat verdicts do; the rest stay bare."""
    shared_weight: float = 2.0
    """Lines per shared ("any"/"polar") frame relative to a label-specific template. Shared frames
    are where the sentiment words, not the phrasing, decide the label."""
    languages: tuple[str, ...] = field(default_factory=lambda: tuple(LANGUAGES))


def template_splits(lang: ModuleType, params: ChatParams) -> dict[str, str]:
    """Template id -> split, per (language, kind): a fixed shuffle, heldout first, then val."""
    out: dict[str, str] = {}
    for kind in KINDS:
        ids = [f"{lang.LANGUAGE}.{kind}.{i}" for i in range(len(lang.TEMPLATES.get(kind, ())))]
        random.Random(f"{params.split_seed}:{lang.LANGUAGE}:{kind}").shuffle(ids)
        n_held = round(len(ids) * params.heldout_fraction)
        n_val = max(1, round((len(ids) - n_held) * params.val_fraction))
        for i, tid in enumerate(ids):
            out[tid] = "heldout" if i < n_held else "val" if i < n_held + n_val else "train"
    return out


def fillers(lang: ModuleType, side: str) -> dict[str, list]:
    """The filler vocabularies one side ("train" or "heldout") may use, by slot name.

    The training side also gets invented names (DJs, tracks, artists, places, @users): with names of
    every shape in training, a model learns that a name it has never read carries no sentiment."""
    tables = {"dj": common.DJS, "song": common.SONGS, "time": common.TIMES, "user": common.USERS, **lang.FILLERS}
    out = {slot: list(parts[side]) for slot, parts in tables.items()}
    if side == "train":
        for slot, names in _invented().items():
            out[slot] += names
    return out


def filler_words(lang: ModuleType, side: str) -> list[str]:
    """Every filler value of one side as it can appear in text (nouns without their gender)."""
    words: list[str] = []
    for slot, values in fillers(lang, side).items():
        for v in values:
            if slot == "song":
                words.extend(v)
            else:
                words.append(_strip_gender(v)[0])
    return words


def generate(params: ChatParams = ChatParams()) -> list[ChatLine]:
    rows: list[ChatLine] = []
    for code in params.languages:
        rows.extend(_language_rows(LANGUAGES[code], params))
    trained = {r.text for r in rows if r.split != "heldout"}  # emoji-only lines look alike in any language
    return [r for r in rows if r.split != "heldout" or r.text not in trained]


def content_hash(rows: list[ChatLine], params: ChatParams) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": GENERATOR_VERSION, **asdict(params)}, sort_keys=True).encode())
    for r in rows:
        h.update("\t".join((r.language, r.label, r.split, r.template, r.text)).encode("utf-8") + b"\n")
    return h.hexdigest()


def load_gold(path: Path = GOLD) -> list[ChatLine]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines[0].split("\t") != ["language", "label", "text"]:
        raise ValueError(f"{path}: header must be language<TAB>label<TAB>text")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        language, label, text = line.split("\t")
        if label not in LABELS or language not in LANGUAGES or not text.strip():
            raise ValueError(f"{path}:{n}: bad row {line!r}")
        rows.append(ChatLine(text, label, language, "gold", "gold"))
    return rows


def by_split(rows: list[ChatLine]) -> dict[str, list[ChatLine]]:
    out: dict[str, list[ChatLine]] = {s: [] for s in SPLITS}
    for r in rows:
        out.setdefault(r.split, []).append(r)
    return out


# -- one language -------------------------------------------------------------------------------


def _language_rows(lang: ModuleType, params: ChatParams) -> list[ChatLine]:
    splits = template_splits(lang, params)
    per_label = params.lines_per_language // len(LABELS)
    weight = {kind: params.shared_weight if len(labels) > 1 else 1.0 for kind, labels in KINDS.items()}
    n_templates = {
        label: sum(weight[k] * len(lang.TEMPLATES.get(k, ())) for k, labels in KINDS.items() if label in labels)
        for label in LABELS
    }
    rows: list[ChatLine] = []
    for kind, labels in KINDS.items():
        for i, template in enumerate(lang.TEMPLATES.get(kind, ())):
            tid = f"{lang.LANGUAGE}.{kind}.{i}"
            split = splits[tid]
            vocab = fillers(lang, "heldout" if split == "heldout" else "train")
            for label in labels:
                quota = math.ceil(weight[kind] * per_label / n_templates[label])
                rng = random.Random(f"{params.seed}:{tid}:{label}")
                seen: set[str] = set()
                bare = kind in ("positive", "negative") and not _SENTIMENT_SLOT.search(template)
                for _ in range(quota * 8):
                    if len(seen) >= quota:
                        break
                    line = _add_cue(template, rng) if bare and rng.random() < params.cue_rate else template
                    text = _noise(_render(line, label, lang, vocab, rng), label, lang, vocab, rng)
                    if text not in seen:
                        seen.add(text)
                        rows.append(ChatLine(text, label, lang.LANGUAGE, tid, split))
    return rows


@functools.lru_cache(maxsize=1)
def _invented() -> dict[str, list]:
    """Names made of syllables, none of them a word of any language table or a held-out value."""
    taken = set()
    for lang in LANGUAGES.values():
        for values in [*lang.LEXICON.values(), *lang.TEMPLATES.values()]:
            taken |= {w.lower() for v in values for w in re.findall(r"\w+", v)}
        taken |= {w.lower() for v in filler_words(lang, "heldout") for w in re.findall(r"\w+", v)}
    rng = random.Random("invented-names")

    def word(syllables: int) -> str:
        while True:
            w = "".join(rng.choice(common.SYLLABLES) for _ in range(syllables))
            if w not in taken:
                return w.capitalize()

    return {
        "dj": [f"{rng.choice(common.DJ_PREFIXES)} {word(rng.randint(2, 3))}".strip() for _ in range(200)],
        "song": [(" ".join(word(rng.randint(1, 3)) for _ in range(rng.randint(1, 3))), word(rng.randint(2, 3)))
                 for _ in range(100)],
        "place": [word(rng.randint(2, 4)) for _ in range(30)],
        "user": [f"@{word(2).lower()}{rng.choice(['', '_', '.'])}{rng.randint(0, 999)}" for _ in range(100)],
    }


_SENTIMENT_SLOT = re.compile(r"\{(pos_\w+|neg_\w+|adj|np|excl|emo|verb|negd)\}")


def _add_cue(template: str, rng: random.Random) -> str:
    """A wordless idiom plus a sentiment word or emoji of the line's label (resolved by _render)."""
    return rng.choice(["{t} {emo}", "{t}, {excl}", "{excl}, {t}", "{t}... {adj}", "{t} {emo}{emo}"]).replace(
        "{t}", template
    )


def _strip_gender(value: str) -> tuple[str, str]:
    """"f:mezcla" -> ("mezcla", "f"); values without a prefix are masculine (or genderless)."""
    if len(value) > 2 and value[1] == ":" and value[0] in "mfn":
        return value[2:], value[0]
    return value, "m"


def _emoji(label: str, rng: random.Random) -> str:
    pool = common.EMOJI[label]
    style = rng.random()
    if style < 0.45:
        return rng.choice(pool)
    if style < 0.8:
        return rng.choice(pool) * rng.randint(2, 4)
    return "".join(rng.choice(pool) for _ in range(rng.randint(2, 3)))


def _render(template: str, label: str, lang: ModuleType, vocab: dict[str, list], rng: random.Random) -> str:
    slots = _SLOT.findall(template)
    gender = "f" if "g_f" in slots else "n" if "g_n" in slots else "m"  # {g_f}: subject is feminine
    picked: dict[str, str] = {}
    if "noun" in slots:
        picked["noun"], gender = _strip_gender(rng.choice(vocab["noun"]))
    if "track" in slots or "artist" in slots:
        picked["track"], picked["artist"] = rng.choice(vocab["song"])
    if "dj2" in slots:
        picked["dj"], picked["dj2"] = rng.sample(vocab["dj"], 2)

    def fill(match: re.Match) -> str:
        slot = match.group(1)
        if slot in ("g_f", "g_n"):
            return ""
        if slot == "negd":
            slot = _NEGATED[label]
        elif slot in ("adj", "np", "excl", "emo", "verb"):  # shared frames: the label picks the lexicon
            slot = f"{_PREFIX[label]}_{slot}"
        if slot in picked and slot in ("noun", "track", "artist", "dj", "dj2"):
            return picked[slot]
        if slot in ("pos_emo", "neg_emo", "neu_emo"):
            return _emoji({"pos": "positive", "neg": "negative", "neu": "neutral"}[slot[:3]], rng)
        if slot == "n":
            return str(rng.randint(1, 5))
        if slot == "mins":
            return str(rng.choice([2, 3, 5, 10, 15, 20, 30]))
        if slot == "sec":
            return f"{rng.randint(0, 59):02d}"
        if slot in lang.ARTICLES:
            forms = lang.ARTICLES[slot]
            return forms.get(gender, forms["m"])
        pool = lang.LEXICON.get(slot) or vocab.get(slot)
        if pool is None:
            raise KeyError(f"{lang.LANGUAGE}: template slot {{{slot}}} has no vocabulary: {template!r}")
        value = rng.choice(pool)
        if "|" in value:  # gendered forms "m|f" agree with the line's noun
            forms = value.split("|")
            value = forms[1] if gender == "f" else forms[0]
        return value

    text = _SLOT.sub(fill, template)
    text = re.sub(r"\s+", " ", text).strip()
    return lang.fix(text) if hasattr(lang, "fix") else text


# -- chat typing noise (label-independent) --------------------------------------------------------


def _words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"[^\W\d_]{3,}", text)]


def _elongate(word: str, rng: random.Random) -> str:
    last = max((i for i, c in enumerate(word.lower()) if c in _VOWELS), default=len(word) - 1)
    return word[: last + 1] + word[last] * rng.randint(2, 5) + word[last + 1 :]


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap two letters
    return word[:i] + word[i + 1 :]  # drop one


def _strip_accents(text: str) -> str:
    kept = [c for c in unicodedata.normalize("NFD", text) if not "\u0300" <= c <= "\u036f"]  # keep emoji selectors
    return unicodedata.normalize("NFC", "".join(kept))


def _edit_word(text: str, rng: random.Random, edit, ok=lambda w: True) -> str:
    spans = [(a, b) for a, b in _words(text) if ok(text[a:b])]
    if not spans:
        return text
    a, b = rng.choice(spans)
    return text[:a] + edit(text[a:b]) + text[b:]


def _noise(text: str, label: str, lang: ModuleType, vocab: dict[str, list], rng: random.Random) -> str:
    protected = {w.lower() for w in lang.PROTECTED}  # negators: a typo must not flip the meaning
    if rng.random() < 0.18:
        text = _edit_word(text, rng, lambda w: _elongate(w, rng))
    if rng.random() < 0.08:
        text = _edit_word(text, rng, str.upper)
    if rng.random() < 0.12:
        text = _edit_word(text, rng, lambda w: _typo(w, rng), lambda w: len(w) >= 5 and w.lower() not in protected)
    if lang.LANGUAGE != "en" and rng.random() < 0.3:
        text = _strip_accents(text)
    case = rng.random()
    if case < 0.45:
        text = text.lower()
    elif case < 0.53:
        text = text.upper()
    elif case < 0.7:
        text = text[:1].upper() + text[1:]
    text = _punctuate(text, rng)
    if rng.random() < 0.12:
        text += " " + _emoji(label, rng)
    if rng.random() < 0.06:
        text = f"{rng.choice(vocab['user'])} {text}"
    return text


def _punctuate(text: str, rng: random.Random) -> str:
    end = re.search(r"[.!?¿¡…]+$", text)
    if end and "?" in end.group():
        return text[: end.start()] + rng.choice(["?", "?", "??", "???", "", " ?", "?!"])
    if end:
        return text[: end.start()] + rng.choice(["", "", "!", "!!", "!!!", ".", "...", " !"])
    if text[-1:].isalnum() and rng.random() < 0.3:
        return text + rng.choice(["!", "!!", ".", "...", "!!!"])
    return text
