"""Softmax over the sentiment logits and the arg-max label (last step of sentiment_pipeline)."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = {k: v["string_value"] for k, v in json.loads(args["model_config"])["parameters"].items()}
        self.labels = np.array([label.encode() for label in json.loads(params["labels"])], dtype=np.object_)

    def execute(self, requests):
        responses = []
        for request in requests:
            logits = pb_utils.get_input_tensor_by_name(request, "logits").as_numpy().astype(np.float32)
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
            labels = self.labels[probs.argmax(axis=1)].reshape(-1, 1)
            responses.append(
                pb_utils.InferenceResponse([pb_utils.Tensor("probabilities", probs), pb_utils.Tensor("label", labels)])
            )
        return responses
