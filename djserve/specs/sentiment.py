"""`sentiment`: multilingual XLM-RoBERTa sequence classifier (transformers).

Decisions:
- The reference model is a small XLM-RoBERTa config (same architecture, 2 layers, hidden 64)
  trained from scratch (`djserve train sentiment`) on the project's generated multilingual chat,
  with a Unigram tokenizer trained on the same lines (lower-cased, accents stripped, letter runs
  collapsed: the normaliser travels in tokenizer.json); any local HF checkpoint directory
  (xlm-roberta-large fine-tuned included) exports unchanged.
- The version directory carries the tokenizer (`<N>/tokenizer/`), so the text pipeline always
  tokenizes with the vocabulary of the model it feeds.
- Sequences are truncated to MAX_TOKENS = 512 and padded to LENGTH_BUCKETS so requests of
  similar length batch together in Triton (its dynamic batcher only joins equal shapes).
"""

from djserve.specs.base import OVERHEAD_BOUND, Batching, ModelSpec, TensorSpec

LABELS = ("negative", "neutral", "positive")
MAX_TOKENS = 512
LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512)

SPEC = ModelSpec(
    name="sentiment",
    framework="transformers",
    inputs=(
        TensorSpec("input_ids", "INT64", ("tokens",), "token ids (range: safe for test inputs; real bound is the vocab)", value_range=(3, 256)),
        TensorSpec("attention_mask", "INT64", ("tokens",), "1 = token, 0 = padding", value_range=(1, 2)),
    ),
    outputs=(TensorSpec("logits", "FP32", (len(LABELS),), "unnormalised class scores", labels=LABELS),),
    batching=Batching(max_batch_size=32, max_queue_delay_us=0),
    description="Chat sentiment in many languages",
    response_cache=True,  # live chat repeats itself ("GG", "🔥🔥🔥")
    decisions=__doc__ or "",
    **OVERHEAD_BOUND,
    parity_axes=({"tokens": 16}, {"tokens": 37}, {"tokens": 128}),
)
