"""Multilingual sentiment classifier: XLM-RoBERTa for sequence classification.

The production model is a fine-tuned xlm-roberta-large directory given as a checkpoint. Without
one, `build_reference_checkpoint` writes a small model of the same architecture and a Unigram
(SentencePiece-style, like XLM-R's) tokenizer trained offline on the project's chat corpus, both
in the standard HF layout, so the exporter treats it exactly like a user's directory.
`training.trainers.sentiment` trains the same builders on the generated chat data.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Iterable

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaForSequenceClassification

from djserve.specs.sentiment import LABELS, MAX_TOKENS

CORPUS = Path(__file__).parent / "data" / "chat_corpus.tsv"
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..3, mask last
VOCAB_SIZE = 1200


def corpus() -> list[tuple[str, str]]:
    """(label, text) rows of the bundled multilingual chat corpus."""
    rows = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            label, text = line.split("\t", 1)
            rows.append((label, text))
    return rows


def build_tokenizer(
    texts: Iterable[str] | None = None, vocab_size: int = VOCAB_SIZE, fold: bool = False
) -> PreTrainedTokenizerFast:
    """Train a Unigram tokenizer on `texts` (default: the bundled corpus, for the untrained reference).

    `fold` normalises the way chat varies: lower case, no accents, and a letter or punctuation
    mark repeated 3+ times kept once ("INCREÍBLEEE!!!" -> "increible!"). The normalizer is saved in
    tokenizer.json, so the gateway and the Triton tokenize step fold text exactly as training did."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = _folding() if fold else normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(list(texts) if texts is not None else [text for _, text in corpus()], trainer=trainer)
    _fix_piece_order(tok)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=MAX_TOKENS,
    )


def _fix_piece_order(tok: Tokenizer) -> None:
    """Make the same corpus give the same ids (and so a seeded model the same weights).

    The trainer sums in hash-map order, so scores vary in the last bits, and it appends the rare
    characters it did not keep at the bottom, 1e-4 apart, in hash-set order. Round the scores, hand
    that bottom run its scores in character order, and sort."""
    pieces = json.loads(tok.to_str())["model"]["vocab"]
    n = len(SPECIAL_TOKENS)  # the trainer puts them first, at their fixed ids
    body = {piece: round(score, 8) for piece, score in pieces[n:]}
    chars = sorted((sc, p) for p, sc in body.items() if len(p) == 1)
    run = chars[:1]
    for sc, p in chars[1:]:
        if sc - run[-1][0] > 1.5e-4:
            break
        run.append((sc, p))
    for (score, _), piece in zip(sorted(run), sorted((p for _, p in run), reverse=True)):
        body[piece] = score
    ordered = [tuple(p) for p in pieces[:n]] + sorted(body.items(), key=lambda p: (-p[1], p[0]))
    tok.model = models.Unigram(ordered, unk_id=SPECIAL_TOKENS.index("<unk>"), byte_fallback=False)


def _folding() -> normalizers.Normalizer:
    collapse = [normalizers.Replace(Regex(re.escape(c) + "{3,}"), c) for c in string.ascii_lowercase + "!?."]
    steps = [normalizers.NFKC(), normalizers.Lowercase(), normalizers.NFD(), normalizers.StripAccents()]
    return normalizers.Sequence([*steps, *collapse])


def build_model(
    vocab_size: int,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 2,
    intermediate_size: int = 128,
    dropout: float = 0.1,
) -> XLMRobertaForSequenceClassification:
    """A seeded XLM-R classifier; the defaults are the untrained reference size."""
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate_size,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=MAX_TOKENS + 2,  # XLM-R offsets positions by padding_idx + 1
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    return XLMRobertaForSequenceClassification(config).eval()


def build_reference_checkpoint(target: Path, seed: int = 0) -> Path:
    """Write tokenizer + seeded model as a local HF directory (untrained reference weights)."""
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), seed)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(target)
    model.save_pretrained(target)
    return target


XLMR_VOCAB_SIZE = 250_002
#: The published XLM-R encoder sizes (hidden, layers, heads, feed-forward): what production serves.
PRODUCTION_SIZES = {
    "base": dict(hidden_size=768, layers=12, heads=12, intermediate_size=3072),  # 278M parameters
    "large": dict(hidden_size=1024, layers=24, heads=16, intermediate_size=4096),  # 560M: over 2 GiB as FP32
}


def build_production_checkpoint(target: Path, size: str, seed: int = 0) -> Path:
    """An xlm-roberta-`size` classifier with seeded random weights (nothing downloaded), as a local HF
    directory: the production architecture's compute and file size, for benchmarks and the large-model
    export path. Its predictions mean nothing; the reference tokenizer feeds it valid ids."""
    tokenizer = build_tokenizer()
    model = build_model(XLMR_VOCAB_SIZE, seed, **PRODUCTION_SIZES[size])
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(target)
    model.save_pretrained(target)
    return target
