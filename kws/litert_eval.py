"""Running exported TFLite models with LiteRT: numpy in, float scores out.

Only numpy and LiteRT are imported, as on a device. Integer models are fed quantized
inputs and their outputs dequantized, with the parameters stored in the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

SIGNATURE = "serving_default"


def load_interpreter(model: str | Path | bytes, num_threads: int = 1) -> Interpreter:
    if isinstance(model, bytes):
        return Interpreter(model_content=model, num_threads=num_threads)
    return Interpreter(model_path=str(model), num_threads=num_threads)


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Float values to the tensor's dtype (int8 by its scale and zero point; float as is)."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return np.asarray(values, dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(detail["dtype"], np.integer):
        return np.asarray(values, np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


class SignatureModel:
    """A model's serving signature: named float arrays in, named float arrays out."""

    def __init__(self, model: str | Path | bytes, num_threads: int = 1):
        self.interpreter = load_interpreter(model, num_threads)
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        quantized = {name: quantize(value, self.input_details[name])
                     for name, value in inputs.items()}
        outputs = self.runner(**quantized)
        return {name: dequantize(value, self.output_details[name])
                for name, value in outputs.items()}


def window_scores(model: SignatureModel, features: np.ndarray) -> np.ndarray:
    """Scores of each clip ``(clips, frames, mel bins)`` from a window model, one invoke each."""
    return np.concatenate([model(features=clip[None])["scores"] for clip in features])


def stream_scores(model: SignatureModel, frames: np.ndarray) -> np.ndarray:
    """Scores after each frame of one clip ``(frames, mel bins)``, states carried over."""
    state_names = sorted(name for name in model.input_details if name.startswith("state_"))
    states = {name: np.zeros(model.input_details[name]["shape"], np.float32)
              for name in state_names}
    scores = []
    for frame in frames:
        outputs = model(frame=frame[None], **states)
        states = {name: outputs[f"new_{name}"] for name in state_names}
        scores.append(outputs["scores"][0])
    return np.stack(scores)
