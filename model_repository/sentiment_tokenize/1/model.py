"""Tokenisation step of sentiment_pipeline: UTF-8 text -> input_ids, attention_mask.

Uses the tokenizer saved inside the newest version of the source model (`<repo>/sentiment/<N>/
tokenizer/tokenizer.json`), so the vocabulary always matches the exported weights. Each request is
padded to the smallest length bucket that fits its longest text: Triton's dynamic batcher only
joins requests of equal shape, and buckets keep most chat lines in a few shapes.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer


class TritonPythonModel:
    def initialize(self, args):
        params = {k: v["string_value"] for k, v in json.loads(args["model_config"])["parameters"].items()}
        self.max_tokens = int(params["max_tokens"])
        self.buckets = sorted(json.loads(params["length_buckets"]))
        tokenizer_dir = self._newest_tokenizer(Path(args["model_repository"]).parent / params["source_model"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        config_file = tokenizer_dir / "tokenizer_config.json"
        pad_token = json.loads(config_file.read_text()).get("pad_token", "<pad>") if config_file.exists() else "<pad>"
        if isinstance(pad_token, dict):
            pad_token = pad_token.get("content", "<pad>")
        self.pad_id = self.tokenizer.token_to_id(pad_token)
        if self.pad_id is None:
            raise pb_utils.TritonModelException(f"tokenizer in {tokenizer_dir} has no pad token {pad_token!r}")

    @staticmethod
    def _newest_tokenizer(model_dir: Path) -> Path:
        versions = sorted((int(p.name) for p in model_dir.iterdir() if p.name.isdigit()), reverse=True)
        for v in versions:
            candidate = model_dir / str(v) / "tokenizer"
            if (candidate / "tokenizer.json").is_file():
                return candidate
        raise pb_utils.TritonModelException(f"no version of {model_dir} ships tokenizer/tokenizer.json")

    def execute(self, requests):
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
            encodings = self.tokenizer.encode_batch([t.decode("utf-8", "replace") for t in texts])
            longest = max(len(e.ids) for e in encodings)
            width = next((b for b in self.buckets if b >= longest), longest)
            ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(encodings), width), dtype=np.int64)
            for row, enc in enumerate(encodings):
                ids[row, : len(enc.ids)] = enc.ids
                mask[row, : len(enc.ids)] = 1
            responses.append(
                pb_utils.InferenceResponse([pb_utils.Tensor("input_ids", ids), pb_utils.Tensor("attention_mask", mask)])
            )
        return responses
