"""Multilingual sentiment classifier (S0:451-599): XLM-RoBERTa for sequence classification.

The production model is a fine-tuned xlm-roberta-large directory given as a checkpoint. Without
one, `build_reference_checkpoint` writes a small model of the same architecture and a Unigram
(SentencePiece-style, like XLM-R's) tokenizer trained offline on the project's chat corpus, both
in the standard HF layout, so the exporter treats it exactly like a user's directory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
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


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator([text for _, text in corpus()], trainer=trainer)
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


def build_model(vocab_size: int, seed: int = 0) -> XLMRobertaForSequenceClassification:
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
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
