"""`sentiment_pipeline` ensemble: raw UTF-8 text in, label and probabilities out.

tokenize (Python step, the tokenizer of the newest `sentiment` version) -> `sentiment` (ONNX)
-> postprocess (Python step: softmax, arg-max label), so a backend can call Triton with text.
"""

import json

from djserve.specs import sentiment
from djserve.specs.base import Batching, EnsembleStep, ModelSpec, TensorSpec

TEXT = TensorSpec("text", "BYTES", (1,), "one chat message, UTF-8")
LOGITS = sentiment.SPEC.output("logits")
PROBABILITIES = TensorSpec(
    "probabilities", "FP32", (len(sentiment.LABELS),), "softmax over labels", labels=sentiment.LABELS
)
LABEL = TensorSpec("label", "BYTES", (1,), "most probable label, UTF-8")

TOKENIZE = ModelSpec(
    name="sentiment_tokenize",
    framework="python",
    inputs=(TEXT,),
    outputs=sentiment.SPEC.inputs,
    batching=Batching(max_batch_size=32, max_queue_delay_us=500),
    description="Tokenisation with the tokenizer shipped in the newest sentiment version",
    instance_kind="KIND_CPU",
    parameters={
        "source_model": sentiment.SPEC.name,
        "max_tokens": str(sentiment.MAX_TOKENS),
        "length_buckets": json.dumps(sentiment.LENGTH_BUCKETS),
    },
)

POSTPROCESS = ModelSpec(
    name="sentiment_postprocess",
    framework="python",
    inputs=(LOGITS,),
    outputs=(PROBABILITIES, LABEL),
    batching=Batching(max_batch_size=32, max_queue_delay_us=500),
    description="Softmax and label",
    instance_kind="KIND_CPU",
    parameters={"labels": json.dumps(sentiment.LABELS)},
)

SPEC = ModelSpec(
    name="sentiment_pipeline",
    framework="ensemble",
    inputs=(TEXT,),
    outputs=(PROBABILITIES, LABEL),
    batching=Batching(max_batch_size=32, dynamic=False),
    description="Chat text to sentiment in one Triton call",
    decisions=__doc__ or "",
    steps=(
        EnsembleStep(
            "sentiment_tokenize",
            {"text": "text"},
            {"input_ids": "input_ids", "attention_mask": "attention_mask"},
        ),
        EnsembleStep(
            "sentiment", {"input_ids": "input_ids", "attention_mask": "attention_mask"}, {"logits": "logits"}
        ),
        EnsembleStep(
            "sentiment_postprocess", {"logits": "logits"}, {"probabilities": "probabilities", "label": "label"}
        ),
    ),
)
