"""Genre weighting of the judge's four components into `overall_score` (step of battle_judge).

The weight table comes from config.pbtxt parameters, rendered from djserve.specs.genres, so this
file stays free of project imports and runs unchanged on the NGC container.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = {k: v["string_value"] for k, v in json.loads(args["model_config"])["parameters"].items()}
        self.weights = {g: np.asarray(w, np.float32) for g, w in json.loads(params["genre_weights"]).items()}
        self.default = np.asarray(json.loads(params["default_weights"]), np.float32)

    def weights_for(self, genre: bytes) -> np.ndarray:
        # Unknown genre -> the documented default (equal weights), never an error.
        return self.weights.get(genre.decode("utf-8", "replace").strip().lower(), self.default)

    def execute(self, requests):
        responses = []
        for request in requests:
            scores = pb_utils.get_input_tensor_by_name(request, "component_scores").as_numpy()
            genres = pb_utils.get_input_tensor_by_name(request, "genre").as_numpy().reshape(-1)
            weights = np.stack([self.weights_for(g) for g in genres])
            overall = np.sum(scores * weights, axis=1, keepdims=True, dtype=np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("overall_score", overall)]))
        return responses
