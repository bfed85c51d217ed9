#!/usr/bin/env python3
"""Measures a kws TFLite model on the device it runs on: latency, size, memory, ops, accuracy.

One file, copied alone to a phone, a Raspberry Pi or a board with Python: it imports only
numpy and a LiteRT interpreter (ai_edge_litert, else tflite_runtime, else tensorflow.lite).

    pip install numpy ai-edge-litert
    python3 benchmark_tflite.py gru_int8.tflite
    python3 benchmark_tflite.py gru_int8_stream.tflite --stream
    python3 benchmark_tflite.py gru_int8.tflite --data_dir my_words --manifest manifest.json

Flags follow TFLite's benchmark_model: --num_runs, --warmup_runs, --num_threads,
--use_xnnpack. --json OUT writes every figure machine-readable. Inside the kws package this
file is also ``kws.benchmark_tflite``: export and the tests use its runner and front end, so
the device computes features exactly as training did.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import resource
import struct
import sys
import time
import wave
from pathlib import Path

import numpy as np

SIGNATURE = "serving_default"
MANIFEST = "manifest.json"

# TFLite BuiltinOperator codes of the ops kws models and their neighbours use (the schema's
# enum; a test checks these against TensorFlow's copy). Others print as BUILTIN_<code>.
BUILTIN_OPS = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 11: "L2_NORMALIZATION", 14: "LOGISTIC",
    17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 21: "RELU6", 22: "RESHAPE", 25: "SOFTMAX",
    28: "TANH", 34: "PAD", 35: "UNIDIRECTIONAL_SEQUENCE_RNN", 36: "GATHER", 39: "TRANSPOSE",
    40: "MEAN", 41: "SUB", 42: "DIV", 43: "SQUEEZE", 44: "UNIDIRECTIONAL_SEQUENCE_LSTM",
    45: "STRIDED_SLICE", 47: "EXP", 49: "SPLIT", 53: "CAST", 54: "PRELU", 55: "MAXIMUM",
    56: "ARG_MAX", 57: "MINIMUM", 58: "LESS", 61: "GREATER", 65: "SLICE", 69: "TILE",
    70: "EXPAND_DIMS", 73: "LOG", 74: "SUM", 75: "SQRT", 76: "RSQRT", 77: "SHAPE", 78: "POW",
    82: "REDUCE_MAX", 83: "PACK", 88: "UNPACK", 93: "ZEROS_LIKE", 94: "FILL", 98: "LEAKY_RELU",
    99: "SQUARED_DIFFERENCE", 102: "SPLIT_V", 106: "ADD_N", 114: "QUANTIZE", 117: "HARD_SWISH",
    118: "IF", 119: "WHILE", 123: "SELECT_V2", 126: "BATCH_MATMUL", 128: "CUMSUM",
    129: "CALL_ONCE", 131: "RFFT2D", 142: "VAR_HANDLE", 143: "READ_VARIABLE",
    144: "ASSIGN_VARIABLE", 150: "GELU",
}


class BenchmarkError(Exception):
    """Bad input: the tool prints the message as one line and exits non-zero."""


# ----------------------------------------------------------------------------- runtime


def load_runtime():
    """(Interpreter class, its module, runtime name): LiteRT first, TensorFlow last."""
    try:
        from ai_edge_litert import interpreter as module

        return module.Interpreter, module, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as module

        return module.Interpreter, module, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, tf.lite.experimental, "tensorflow.lite"
    except ImportError:
        raise BenchmarkError("no TFLite runtime: pip install ai-edge-litert") from None


def read_model(path: str | Path) -> bytes:
    """The model's bytes; a missing, empty, truncated or non-TFLite file is an error."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as error:
        raise BenchmarkError(f"{path}: cannot read it ({error.strerror})") from None
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise BenchmarkError(f"{path}: not a TFLite model (no TFL3 identifier)")
    try:
        model_ops(content)
    except (struct.error, IndexError, UnicodeDecodeError):
        raise BenchmarkError(f"{path}: truncated or damaged TFLite model") from None
    return content


def make_interpreter(content: bytes, num_threads: int = 1, use_xnnpack: bool = True,
                     source: str = "model"):
    interpreter_class, module, _ = load_runtime()
    options = {"model_content": content, "num_threads": num_threads}
    if not use_xnnpack:
        options["experimental_op_resolver_type"] = \
            module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = interpreter_class(**options)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise BenchmarkError(f"{source}: the runtime cannot load it ({error})") from None
    return interpreter


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Float values to the tensor's dtype (integers by its scale and zero point)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu":
        return np.asarray(values, dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind not in "iu":
        return np.asarray(values, np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


class SignatureModel:
    """A model's serving signature: named float arrays in, named float arrays out."""

    def __init__(self, model: str | Path | bytes, num_threads: int = 1, use_xnnpack: bool = True):
        content = model if isinstance(model, bytes) else read_model(model)
        self._options = (content, num_threads, use_xnnpack,
                         "model" if isinstance(model, bytes) else str(model))
        self.interpreter = make_interpreter(*self._options)
        try:
            self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        except ValueError:
            raise BenchmarkError(f"model has no {SIGNATURE!r} signature; export it with "
                                 "python -m kws.export") from None
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()

    @property
    def is_streaming(self) -> bool:
        return "frame" in self.input_details

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        quantized = {}
        for name, value in inputs.items():
            expected = tuple(self.input_details[name]["shape"])
            if value.shape != expected:
                raise BenchmarkError(f"input {name!r} has shape {value.shape}; the model "
                                     f"expects {expected}")
            quantized[name] = quantize(value, self.input_details[name])
        outputs = self.runner(**quantized)
        return {name: dequantize(value, self.output_details[name])
                for name, value in outputs.items()}

    def raw_interpreter(self):
        """A second interpreter of the same model, for raw ``set_tensor``/``invoke`` (the
        signature runner holds references to its own interpreter's tensors, and invoke()
        refuses then); tensor indices are the model's, so this model's details apply."""
        return make_interpreter(*self._options)

    def zero_states(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(detail["shape"], np.float32)
                for name, detail in self.input_details.items() if name.startswith("state_")}


def window_scores(model: SignatureModel, features: np.ndarray) -> np.ndarray:
    """Scores of each clip ``(clips, frames, mel bins)`` from a window model."""
    return np.concatenate([model(features=clip[None])["scores"] for clip in features])


def stream_scores(model: SignatureModel, frames: np.ndarray) -> np.ndarray:
    """Scores after each frame of one clip ``(frames, mel bins)``, from zero states.

    New states come back dequantized and are quantized again with the inputs' own
    parameters, so a model whose state outputs and inputs differ in scale still streams.
    """
    states = model.zero_states()
    scores = []
    for frame in frames:
        outputs = model(frame=frame[None], **states)
        states = {name: outputs[f"new_{name}"] for name in states}
        scores.append(outputs["scores"][0])
    return np.stack(scores)


def clip_scores(model: SignatureModel, features: np.ndarray) -> np.ndarray:
    """Scores of whole clips from either kind of model (streaming: after the last frame)."""
    if model.is_streaming:
        return np.stack([stream_scores(model, clip)[-1] for clip in features])
    return window_scores(model, features)


# ----------------------------------------------------------------------------- model file


def _table(buffer: bytes, position: int) -> tuple[int, int]:
    """(table position, vtable position) of the flatbuffer table at ``position``."""
    return position, position - struct.unpack_from("<i", buffer, position)[0]


def _field(buffer: bytes, table: tuple[int, int], index: int) -> int | None:
    position, vtable = table
    vtable_size = struct.unpack_from("<H", buffer, vtable)[0]
    if 4 + 2 * index >= vtable_size:
        return None
    offset = struct.unpack_from("<H", buffer, vtable + 4 + 2 * index)[0]
    return position + offset if offset else None


def _vector(buffer: bytes, table: tuple[int, int], index: int) -> list[int]:
    """Positions of the tables in a vector field."""
    field = _field(buffer, table, index)
    if field is None:
        return []
    start = field + struct.unpack_from("<I", buffer, field)[0]
    count = struct.unpack_from("<I", buffer, start)[0]
    return [start + 4 + 4 * i + struct.unpack_from("<I", buffer, start + 4 + 4 * i)[0]
            for i in range(count)]


def model_ops(content: bytes) -> list[list[str]]:
    """Operator names of every subgraph, read from the flatbuffer (delegates aside)."""
    root = _table(content, struct.unpack_from("<I", content, 0)[0])
    names = []
    for code_position in _vector(content, root, 1):  # Model.operator_codes
        code = _table(content, code_position)
        deprecated = _field(content, code, 0)
        builtin = _field(content, code, 3)
        value = struct.unpack_from("<i", content, builtin)[0] if builtin else \
            struct.unpack_from("<b", content, deprecated)[0] if deprecated else 0
        custom = _field(content, code, 1)
        if custom is not None:
            start = custom + struct.unpack_from("<I", content, custom)[0]
            length = struct.unpack_from("<I", content, start)[0]
            names.append("CUSTOM:" + content[start + 4 : start + 4 + length].decode())
        else:
            names.append(BUILTIN_OPS.get(value, f"BUILTIN_{value}"))
    subgraphs = []
    for subgraph_position in _vector(content, root, 2):  # Model.subgraphs
        operators = _vector(content, _table(content, subgraph_position), 3)
        indices = []
        for operator_position in operators:
            field = _field(content, _table(content, operator_position), 0)
            indices.append(struct.unpack_from("<I", content, field)[0] if field else 0)
        subgraphs.append([names[i] for i in indices])
    return subgraphs


def tensor_specs(details: dict) -> dict[str, dict]:
    """Shape, dtype and quantization of a signature's inputs or outputs, by name."""
    return {name: {"shape": [int(d) for d in detail["shape"]],
                   "dtype": np.dtype(detail["dtype"]).name,
                   "scale": float(detail["quantization"][0]),
                   "zero_point": int(detail["quantization"][1])}
            for name, detail in sorted(details.items())}


def tensor_dtypes(interpreter) -> dict[str, int]:
    """How many tensors of each dtype the model holds, over all its subgraphs."""
    counts: dict[str, int] = {}
    subgraphs = interpreter.num_subgraphs() if hasattr(interpreter, "num_subgraphs") else 1
    for subgraph in range(subgraphs):
        details = interpreter.get_tensor_details(subgraph_index=subgraph) if subgraph else \
            interpreter.get_tensor_details()
        for detail in details:
            name = np.dtype(detail["dtype"]).name
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


# ----------------------------------------------------------------------------- front end


def mel_filterbank(features: dict) -> np.ndarray:
    """HTK mel filters ``(fft bins, mel bins)``, as ``keras.layers.MelSpectrogram`` makes them
    (made once per configuration: a stream asks for them every few frames; read-only)."""
    return _mel_filterbank(tuple(sorted(features.items())))


@functools.lru_cache(maxsize=8)
def _mel_filterbank(items: tuple) -> np.ndarray:
    features = dict(items)

    def hz_to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)

    bins = features["fft_length"] // 2 + 1
    bin_mel = hz_to_mel(np.arange(bins) * features["sample_rate"] / features["fft_length"])
    edges = np.linspace(hz_to_mel(features["lower_edge_hz"]),
                        hz_to_mel(features["upper_edge_hz"]), features["num_mel_bins"] + 2)
    rising = (bin_mel[:, None] - edges[:-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[2:] - bin_mel[:, None]) / (edges[2:] - edges[1:-1])
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters[0] = 0.0  # the DC bin is left out
    filters.setflags(write=False)
    return filters


def log_mel(signal: np.ndarray, features: dict) -> np.ndarray:
    """Log-mel features ``(frames, mel bins)`` of a clip or any longer signal, in float64:
    one frame every ``hop_samples``, ``1 + len(signal) // hop_samples`` in all.

    Centred frames (reflect padding of half an FFT), a periodic Hann window of
    ``window_samples`` centred in the FFT frame, power spectrum, mel filters, then
    ``log(mel + log_floor)``: the training front end, in numpy.
    """
    padded = np.pad(np.asarray(signal, np.float64), features["fft_length"] // 2, mode="reflect")
    return padded_log_mel(padded, 1 + len(signal) // features["hop_samples"], features)


def padded_log_mel(padded: np.ndarray, num_frames: int, features: dict) -> np.ndarray:
    """The first ``num_frames`` log-mel frames of an already padded signal: frame ``t`` is
    ``padded[t * hop_samples : t * hop_samples + fft_length]``."""
    fft_length, window_samples = features["fft_length"], features["window_samples"]
    window = np.zeros(fft_length)
    left = (fft_length - window_samples) // 2
    window[left : left + window_samples] = \
        0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window_samples) / window_samples)
    starts = np.arange(num_frames) * features["hop_samples"]
    frames = np.asarray(padded, np.float64)[starts[:, None] + np.arange(fft_length)] * window
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    return np.log(power @ mel_filterbank(features) + features["log_floor"])


# Per-channel energy normalisation (Wang et al. 2017) with the paper's fixed values, also
# librosa's defaults: gain (alpha), bias (delta), power (r) and the epsilon.
PCEN_GAIN, PCEN_BIAS, PCEN_POWER, PCEN_EPSILON = 0.98, 2.0, 0.5, 1e-6


def pcen(energy, smooth):
    """PCEN of mel energies given their smoothed energies; written with operators only, so
    numpy arrays and Keras tensors alike go through this one formula."""
    return ((energy / (PCEN_EPSILON + smooth) ** PCEN_GAIN + PCEN_BIAS) ** PCEN_POWER
            - PCEN_BIAS ** PCEN_POWER)


class Adaptation:
    """The front end's causal per-bin adaptation of log-mel frames, frame by frame, carried
    across calls (a stream's frames as they arrive). A smoother ``m[0] = x[0]``,
    ``m[t] = m[t - 1] + (x[t] - m[t - 1]) / time_constant`` runs over each bin, of:

    - the log-mel frames (``running_mean_frames``): the frames less their running mean;
    - the mel energies ``exp(log mel)`` (``pcen_frames``): ``pcen`` of the energies.

    Frames pass unchanged when the front end has neither (both 0 or absent)."""

    def __init__(self, features: dict):
        pcen_frames = features.get("pcen_frames", 0.0)
        time_constant = pcen_frames or features.get("running_mean_frames", 0.0)
        self.pcen = bool(pcen_frames)
        self.rate = 1.0 / time_constant if time_constant else 0.0
        self.smooth = None

    def __call__(self, log_mels: np.ndarray) -> np.ndarray:
        if not self.rate:
            return log_mels
        values = np.exp(log_mels) if self.pcen else log_mels
        out = np.empty_like(log_mels)
        for index, value in enumerate(values):
            self.smooth = value.copy() if self.smooth is None \
                else self.smooth + self.rate * (value - self.smooth)
            out[index] = pcen(value, self.smooth) if self.pcen else value - self.smooth
        return out


def normalized_features(clip: np.ndarray, front_end: dict) -> np.ndarray:
    """A clip's model input: log-mel features, adapted where the front end says so
    (``Adaptation``), normalised with the training statistics."""
    features = front_end["features"]
    return normalize(Adaptation(features)(log_mel(clip, features)), front_end)


def normalize(log_mels: np.ndarray, front_end: dict) -> np.ndarray:
    """Log-mel frames normalised with the training split's per-bin mean and deviation."""
    normalization = front_end["normalization"]
    mean, std = np.asarray(normalization["mean"]), np.asarray(normalization["std"])
    return ((log_mels - mean) / std).astype(np.float32)


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """A PCM WAV file as float mono samples at ``sample_rate`` (channels averaged and the
    rate converted as training does)."""
    try:
        with wave.open(str(path), "rb") as reader:
            rate, width = reader.getframerate(), reader.getsampwidth()
            channels, frames = reader.getnchannels(), reader.getnframes()
            data = reader.readframes(frames)
    except (wave.Error, EOFError, OSError) as error:
        raise BenchmarkError(f"{path}: not a readable PCM WAV file ({error})") from None
    if len(data) < frames * channels * width:
        raise BenchmarkError(f"{path}: truncated WAV file (its header promises "
                             f"{frames * channels * width:,} bytes of samples, the file holds "
                             f"{len(data):,})")
    if width == 1:
        samples = (np.frombuffer(data, np.uint8).astype(np.float32) - 128) / 128
    elif width == 3:
        raw = np.frombuffer(data, np.uint8).reshape(-1, 3)
        values = raw[:, 0].astype(np.int32) | raw[:, 1].astype(np.int32) << 8 | \
            raw[:, 2].astype(np.int8).astype(np.int32) << 16
        samples = values.astype(np.float32) / 2**23
    else:
        dtype = {2: np.int16, 4: np.int32}[width]
        samples = np.frombuffer(data, dtype).astype(np.float32) / (np.iinfo(dtype).max + 1)
    samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    if not len(samples):
        raise BenchmarkError(f"{path}: WAV file holds no samples")
    return resample(samples, rate, sample_rate, path)


def resample(samples: np.ndarray, from_rate: int, to_rate: int, source: Path | str) -> np.ndarray:
    """Polyphase resampling as training does (scipy's ``resample_poly``, exact for any pair
    of integer rates); scipy is needed only when the rates differ."""
    if from_rate == to_rate:
        return samples
    try:
        from scipy.signal import resample_poly
    except ImportError:
        raise BenchmarkError(f"{source}: {from_rate} Hz; the model takes {to_rate} Hz: "
                             "pip install scipy to resample as training does, or resample "
                             f"first (sox in.wav -r {to_rate} out.wav)") from None
    divisor = math.gcd(from_rate, to_rate)
    return resample_poly(samples, to_rate // divisor, from_rate // divisor).astype(np.float32)


def fit_to_clip(samples: np.ndarray, clip_samples: int) -> np.ndarray:
    """Pads a short recording with silence on both sides, or crops it to its loudest window."""
    if len(samples) <= clip_samples:
        before = (clip_samples - len(samples)) // 2
        return np.pad(samples, (before, clip_samples - len(samples) - before))
    energy = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
    start = int(np.argmax(energy[clip_samples:] - energy[:-clip_samples]))
    return samples[start : start + clip_samples]


SPECIAL_FOLDERS = ("_silence_", "_unknown_")


def keyword_indices(labels: list[str] | tuple[str, ...]) -> list[int]:
    """Indices of the labels a detector reports: all but ``_silence_`` and ``_unknown_``."""
    return [index for index, label in enumerate(labels) if label not in SPECIAL_FOLDERS]


def label_folders(data_dir: Path, labels: list[str],
                  listed: set[str] | None = None) -> dict[str, list[Path]]:
    """The clips of each word folder of ``data_dir``, under the model's label it counts as:
    its own, or ``_unknown_`` for a word the model does not know (when it has that class).
    ``listed`` keeps only those clips (paths like ``yes/a_nohash_0.wav``)."""
    if not data_dir.is_dir():
        raise BenchmarkError(f"--data_dir={data_dir}: no such folder")
    clips: dict[str, list[Path]] = {}
    others = []
    for folder in sorted(entry for entry in data_dir.iterdir() if entry.is_dir()):
        if folder.name.startswith(".") or (folder.name.startswith("_")
                                           and folder.name not in SPECIAL_FOLDERS):
            continue  # _background_noise_ and hidden folders
        paths = [path for path in sorted(folder.glob("*.wav"))
                 if listed is None or f"{folder.name}/{path.name}" in listed]
        if not paths:
            continue
        label = folder.name if folder.name in labels else "_unknown_"
        if folder.name not in labels:
            others.append(folder.name)
        clips.setdefault(label, []).extend(paths)
    if others and "_unknown_" not in labels:
        raise BenchmarkError(f"--data_dir={data_dir} has labels the model does not know: "
                             f"{', '.join(others)} (model labels: {', '.join(labels)}, no "
                             "_unknown_ class to count them in)")
    if not clips:
        raise BenchmarkError(f"--data_dir={data_dir}: no .wav clips of any of "
                             f"{', '.join(labels)}" + (" in --only_listed" if listed else ""))
    return clips


def read_list(path: Path) -> set[str]:
    try:
        return {line.strip() for line in path.read_text().splitlines() if line.strip()}
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkError(f"--only_listed={path}: cannot read it ({error})") from None


def labelled_features(data_dir: Path, front_end: dict,
                      listed: set[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and label indices of the clips of ``label_folders``."""
    labels = list(front_end["labels"])
    features, indices = [], []
    config = front_end["features"]
    for label, paths in label_folders(data_dir, labels, listed).items():
        for path in paths:
            clip = fit_to_clip(read_wav(path, config["sample_rate"]), config["clip_samples"])
            features.append(normalized_features(clip, front_end))
            indices.append(labels.index(label))
    return np.stack(features), np.asarray(indices)


def recall_per_class(labels: np.ndarray, predictions: np.ndarray,
                     names: list[str]) -> dict[str, dict]:
    """Clips and recall of each class the data has."""
    return {name: {"clips": int(np.sum(labels == index)),
                   "recall": float(np.mean(predictions[labels == index] == index))}
            for index, name in enumerate(names) if np.any(labels == index)}


# ----------------------------------------------------------------------------- benchmark


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def time_invokes(invoke, num_runs: int, warmup_runs: int) -> dict:
    """First, warm-up and steady latencies of ``invoke()``, in microseconds."""
    start = time.perf_counter()
    invoke()
    first = (time.perf_counter() - start) * 1e6
    warmup = []
    for _ in range(warmup_runs):
        start = time.perf_counter()
        invoke()
        warmup.append((time.perf_counter() - start) * 1e6)
    runs = []
    for _ in range(num_runs):
        start = time.perf_counter()
        invoke()
        runs.append((time.perf_counter() - start) * 1e6)
    return {
        "first_us": first, "warmup_avg_us": float(np.mean(warmup)) if warmup else math.nan,
        "avg_us": float(np.mean(runs)), "std_us": float(np.std(runs)),
        "min_us": float(np.min(runs)), "max_us": float(np.max(runs)),
        "p50_us": _percentile(runs, 50), "p90_us": _percentile(runs, 90),
        "p99_us": _percentile(runs, 99), "runs": num_runs,
    }


def peak_memory_bytes() -> int:
    """The process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def timed_invoke(interpreter, model: SignatureModel):
    """The call that is timed: one ``invoke()`` of ``interpreter`` on random inputs set
    once, and for a streaming model the copy of each new state to its state input, as a
    device loop does (``model``'s details name the tensors)."""
    rng = np.random.default_rng(0)
    for detail in model.input_details.values():
        interpreter.set_tensor(detail["index"], quantize(
            rng.standard_normal(tuple(detail["shape"])).astype(np.float32), detail))
    state_pairs = [(model.output_details[f"new_{name}"]["index"], detail["index"])
                   for name, detail in model.input_details.items() if name.startswith("state_")]

    def invoke():
        interpreter.invoke()
        for new_state, state in state_pairs:
            interpreter.set_tensor(state, interpreter.get_tensor(new_state))

    return invoke


def benchmark(path: Path, args: argparse.Namespace) -> dict:
    return benchmark_content(read_model(path), path, args)


def benchmark_content(content: bytes, path: Path, args: argparse.Namespace) -> dict:
    """Every figure of the report for a model's bytes (``path`` names it in messages)."""
    start = time.perf_counter()
    model = SignatureModel(content, args.num_threads, args.use_xnnpack)
    init_us = (time.perf_counter() - start) * 1e6
    if args.stream and not model.is_streaming:
        raise BenchmarkError(f"{path}: --stream needs a streaming model (frame and state "
                             "inputs), e.g. gru_int8_stream.tflite")
    # Inputs are set once and only invoke() is timed, as benchmark_model does; a streaming
    # model also copies its new states to its state inputs, as a device loop must.
    invoke = timed_invoke(model.raw_interpreter(), model)
    _, _, runtime = load_runtime()
    result = {
        "model": str(path), "runtime": runtime, "size_bytes": len(content),
        "mode": "stream (one frame)" if model.is_streaming else "window",
        "num_threads": args.num_threads, "use_xnnpack": args.use_xnnpack, "init_us": init_us,
        **time_invokes(invoke, args.num_runs, args.warmup_runs),
        "inputs": tensor_specs(model.input_details),
        "outputs": tensor_specs(model.output_details),
        "tensor_dtypes": tensor_dtypes(model.interpreter),
        "ops": model_ops(content),
    }
    if args.data_dir:
        manifest_path = Path(args.manifest) if args.manifest else path.parent / MANIFEST
        front_end = read_manifest(manifest_path, content)
        listed = read_list(Path(args.only_listed)) if args.only_listed else None
        features, labels = labelled_features(Path(args.data_dir), front_end, listed)
        predictions = np.argmax(clip_scores(model, features), axis=-1)
        result["accuracy"] = float(np.mean(predictions == labels))
        result["clips"] = len(labels)
        result["classes"] = recall_per_class(labels, predictions, list(front_end["labels"]))
    result["peak_memory_bytes"] = peak_memory_bytes()
    return result


def read_manifest(manifest_path: Path, content: bytes) -> dict:
    """An export's manifest, checked: it holds a front end, its ``files`` (where it lists
    any) map names to entries, and the model (``content``) is one of them."""
    try:
        manifest = json.loads(manifest_path.read_text())
        manifest["features"], manifest["normalization"], manifest["labels"]
        files = manifest.get("files", {})
        if not (isinstance(files, dict) and all(isinstance(v, dict) for v in files.values())):
            raise TypeError(f"'files' must map file names to objects, got {files!r:.80}")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BenchmarkError(f"--manifest={manifest_path}: cannot read the front end ({error}); "
                             "export the model with python -m kws.export") from None
    check_listed(content, manifest, manifest_path)
    return manifest


def check_listed(content: bytes, manifest: dict, manifest_path: Path) -> None:
    """The model must be one of the manifest's files (by sha256, whatever its name now):
    another export's front end and labels would give wrong answers without a sign."""
    listed = {name: entry.get("sha256") for name, entry in manifest.get("files", {}).items()}
    digest = hashlib.sha256(content).hexdigest()
    if listed and digest not in listed.values():
        raise BenchmarkError(
            f"--manifest={manifest_path}: the model's sha256 {digest[:16]}... matches none of "
            f"its files ({', '.join(listed)}); pass the manifest.json of the export that made "
            "this model")


def report(result: dict) -> str:
    ops = [f"subgraph {i}: {', '.join(sorted(set(names)))} ({len(names)} ops)"
           for i, names in enumerate(result["ops"])]
    lines = [
        f"model: {result['model']} ({result['size_bytes']:,} bytes), {result['mode']}, "
        f"{result['runtime']}, {result['num_threads']} thread(s), "
        f"XNNPACK {'on' if result['use_xnnpack'] else 'off'}",
        f"init: {result['init_us']:.0f} us; first inference: {result['first_us']:.1f} us; "
        f"warm-up average: {result['warmup_avg_us']:.1f} us",
        f"latency over {result['runs']} runs (us): avg {result['avg_us']:.1f}  "
        f"std {result['std_us']:.1f}  min {result['min_us']:.1f}  max {result['max_us']:.1f}  "
        f"p50 {result['p50_us']:.1f}  p90 {result['p90_us']:.1f}  p99 {result['p99_us']:.1f}",
        f"peak memory: {result['peak_memory_bytes'] / 2**20:.1f} MiB",
        "inputs: " + "; ".join(f"{n} {v['shape']} {v['dtype']}" for n, v in
                               result["inputs"].items()),
        "outputs: " + "; ".join(f"{n} {v['shape']} {v['dtype']}" for n, v in
                                result["outputs"].items()),
        "tensor dtypes: " + ", ".join(f"{n} {c}" for n, c in result["tensor_dtypes"].items()),
        *ops,
    ]
    if "accuracy" in result:
        lines.append(f"accuracy: {100 * result['accuracy']:.2f} % on {result['clips']} clips")
        lines.append("recall: " + ", ".join(
            f"{name} {100 * entry['recall']:.2f} % of {entry['clips']}"
            for name, entry in result["classes"].items()))
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a .tflite file made by python -m kws.export")
    parser.add_argument("--num_runs", type=_positive, default=50, help="timed invokes")
    parser.add_argument("--warmup_runs", type=_non_negative, default=5,
                        help="untimed invokes first")
    parser.add_argument("--num_threads", type=_positive, default=1, help="interpreter threads")
    parser.add_argument("--use_xnnpack", type=_boolean, default=True,
                        help="true: LiteRT's default XNNPACK delegate; false: builtin kernels")
    parser.add_argument("--stream", action="store_true",
                        help="time one frame of a streaming model, state carried across invokes")
    parser.add_argument("--data_dir", help="labelled clips, DATA_DIR/<label>/*.wav, for accuracy "
                        "and per-class recall: some or all of the model's labels; other word "
                        "folders count as _unknown_ when the model has that class")
    parser.add_argument("--only_listed", help="with --data_dir: only the clips this file lists "
                        "(label/clip.wav lines, as Speech Commands' testing_list.txt)")
    parser.add_argument("--manifest", help="manifest.json of the export (default: beside MODEL)")
    parser.add_argument("--json", help="write every figure to this JSON file")
    return parser.parse_args(argv)


def write_json(path: Path, result: dict) -> None:
    """Writes ``result`` to ``path`` whole or not at all (a temporary name, renamed)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise BenchmarkError(f"--json={path}: cannot write it ({error.strerror})") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = benchmark(Path(args.model), args)
        print(report(result))
        if args.json:
            write_json(Path(args.json), result)
    except BenchmarkError as error:
        print(f"benchmark_tflite: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
