"""Embedder: an onnxruntime session over a carded model, with provider choice and batching."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from catalog.errors import ModelCardError
from catalog.modelcard import INPUT_NAME, OUTPUT_NAME, ModelCard, card_from_session


def choose_providers(available: list[str]) -> list[str]:
    """CUDA first when onnxruntime-gpu sees a GPU, CPU always as the fallback."""
    preferred = [p for p in ("CUDAExecutionProvider",) if p in available]
    return [*preferred, "CPUExecutionProvider"]


class Embedder:
    """Turns preprocessed image tensors into embedding vectors."""

    def __init__(self, model_path: Path, intra_op_threads: int = 0) -> None:
        import onnxruntime as ort

        if not model_path.is_file():
            raise ModelCardError(model_path, "no such model file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads or (os.cpu_count() or 1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Between batches onnxruntime's threads would keep spinning on cores the decode threads
        # need: `finprint index` on 300 nyala photos ran 120 -> 135 photos/s with spinning off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(model_path), options, providers=choose_providers(ort.get_available_providers())
            )
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
            raise ModelCardError(model_path, f"not a loadable ONNX model ({exc})") from exc
        self.card: ModelCard = card_from_session(self._session, model_path)
        self.model_path = model_path

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def embed(self, tensors: np.ndarray) -> np.ndarray:
        """(batch, C, H, W) float32 -> (batch, dim) float32."""
        if len(tensors) == 0:
            return np.zeros((0, self.card.embedding.dim), dtype=np.float32)
        (vectors,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: tensors.astype(np.float32, copy=False)})
        result = np.asarray(vectors, dtype=np.float32)
        if result.shape != (len(tensors), self.card.embedding.dim):
            # A card that lies about its network would poison the catalogue: stop here.
            raise ModelCardError(
                self.model_path,
                f"the network gives {result.shape[1:]} vectors, the card says {self.card.embedding.dim}",
            )
        return result
