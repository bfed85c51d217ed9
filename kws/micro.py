"""TensorFlow Lite Micro: the int8 models as C arrays, with the ops and the arena they need.

TFLM has no GRU kernel, but our files need none: the streaming model is FULLY_CONNECTED,
SPLIT, ADD, MUL, SUB, LOGISTIC, TANH and SOFTMAX, and the window model adds a WHILE loop.
``c_files`` writes what a Cortex-M project compiles in (``alignas(16)`` flatbuffer, its
length, the op list for a ``tflite::MicroMutableOpResolver`` and the arena size);
``arena_bytes`` measures the arena in TFLM's own interpreter (package ``tflite-micro``), and
``MicroModel`` runs a file there with the LiteRT signature names, so tests can check TFLM's
decisions against LiteRT's.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from kws import benchmark_tflite, fileio

ARENA_ALIGNMENT = 16
ARENA_START = 4096
ARENA_SEARCH_LIMIT = 1 << 20


def _runtime():
    from tflite_micro import runtime  # imported when used: only export and tests need it

    return runtime


# The bisection runs in a child process that prints each size before it tries it: TFLM's
# Python interpreter crashes outright (SIGSEGV) in some arenas too small for it, rather
# than reporting the failed allocation; a crash marks the size it was trying as too small,
# and a new child goes on from there.
_BISECTION = """
import sys
from tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
low, high, step, limit = (int(value) for value in sys.argv[2:])

def runs(size):
    print("try", size, flush=True)
    try:
        runtime.Interpreter.from_bytes(model, arena_size=size).invoke()
    except RuntimeError:
        print("fail", size, flush=True)
        return False
    print("ok", size, flush=True)
    return True

while not runs(high):
    low, high = high, 2 * high
    if high > limit:
        sys.exit(3)
while high - low > step:
    middle = (low + high) // 2 // step * step
    if runs(middle):
        high = middle
    else:
        low = middle
"""


def arena_bytes(flatbuffer: bytes) -> int:
    """The smallest tensor arena (a multiple of 16 bytes) in which TFLM's interpreter
    allocates the model and invokes it, found by bisection."""
    low, high, works = 0, ARENA_START, None
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.tflite"
        model_path.write_bytes(flatbuffer)
        while True:
            child = subprocess.run(
                [sys.executable, "-c", _BISECTION, str(model_path), str(low), str(high),
                 str(ARENA_ALIGNMENT), str(ARENA_SEARCH_LIMIT)],
                capture_output=True, text=True, timeout=600)
            trying = None
            for line in child.stdout.splitlines():
                word, size = line.split()
                if word == "try":
                    trying = int(size)
                elif word == "ok":
                    high, works, trying = int(size), int(size), None
                else:
                    low, trying = int(size), None
                    high = max(high, 2 * low) if works is None else high
            if child.returncode == 3:
                raise RuntimeError(f"TFLM cannot run the model in {ARENA_SEARCH_LIMIT:,} bytes")
            if child.returncode == 0:
                return high
            if trying is None:  # failed before any probe: tflite_micro itself is broken
                raise RuntimeError(f"tflite_micro failed: {child.stderr.strip()[-500:]}")
            if works is not None and trying >= works:  # not a size problem, then
                raise RuntimeError(f"tflite_micro crashed in an arena of {trying} bytes")
            low = trying
            high = max(high, 2 * low) if works is None else high


def c_identifier(file_name: str) -> str:
    """``gru_int8_stream.tflite`` -> ``g_gru_int8_stream_model`` stem: ``gru_int8_stream``."""
    return re.sub(r"\W", "_", Path(file_name).stem)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.lower().split("_"))


def op_names(flatbuffer: bytes) -> list[str]:
    """The model's distinct ops, in every subgraph, sorted."""
    return sorted({op for subgraph in benchmark_tflite.model_ops(flatbuffer) for op in subgraph})


def c_files(flatbuffer: bytes, file_name: str, arena: int) -> tuple[str, str]:
    """The ``.h`` and ``.cc`` text for one model: the flatbuffer array and its length, the
    arena size, and (where TFLM's resolver header is included first) a function that adds
    exactly the model's ops to a ``MicroMutableOpResolver``."""
    stem = c_identifier(file_name)
    camel = _camel(stem)
    ops = op_names(flatbuffer)
    adds = "\n".join(f"  if (resolver.Add{_camel(op)}() != kTfLiteOk) return kTfLiteError;"
                     for op in ops)
    guard = f"KWS_{stem.upper()}_H_"
    header = f"""// {file_name} for TensorFlow Lite Micro, written by python -m kws.export.
#ifndef {guard}
#define {guard}

// The flatbuffer; keep it 16-byte aligned in flash.
extern const unsigned char g_{stem}_model[];
extern const unsigned int g_{stem}_model_len;

// The smallest tensor arena TFLM ran the model in (tflite_micro's interpreter on x86-64);
// allow a little more on a 32-bit target.
constexpr unsigned int k{camel}ArenaBytes = {arena};

// The ops it needs: tflite::MicroMutableOpResolver<k{camel}OpCount>.
constexpr int k{camel}OpCount = {len(ops)};  // {", ".join(ops)}

#ifdef TENSORFLOW_LITE_MICRO_MICRO_MUTABLE_OP_RESOLVER_H_
inline TfLiteStatus Add{camel}Ops(
    tflite::MicroMutableOpResolver<k{camel}OpCount>& resolver) {{
{adds}
  return kTfLiteOk;
}}
#endif

#endif  // {guard}
"""
    body = ",\n  ".join(", ".join(f"0x{byte:02x}" for byte in flatbuffer[start : start + 12])
                        for start in range(0, len(flatbuffer), 12))
    source = f"""// {file_name} for TensorFlow Lite Micro, written by python -m kws.export.
#include "{stem}.h"

alignas(16) const unsigned char g_{stem}_model[] = {{
  {body}
}};
const unsigned int g_{stem}_model_len = {len(flatbuffer)};
"""
    return header, source


def write_c_files(out_dir: Path, flatbuffer: bytes, file_name: str) -> dict:
    """Writes ``<stem>.h`` and ``<stem>.cc`` beside the model; returns the manifest entry
    (arena and flash bytes, ops, file names)."""
    arena = arena_bytes(flatbuffer)
    header, source = c_files(flatbuffer, file_name, arena)
    stem = c_identifier(file_name)
    fileio.write_text_atomic(out_dir / f"{stem}.h", header)
    fileio.write_text_atomic(out_dir / f"{stem}.cc", source)
    return {"arena_bytes": arena, "flash_bytes": len(flatbuffer), "ops": op_names(flatbuffer),
            "files": [f"{stem}.h", f"{stem}.cc"]}


class MicroModel:
    """A model in TFLM's interpreter, called like ``benchmark_tflite.SignatureModel``:
    named float arrays in and out (TFLM has no signatures; the names come from LiteRT's
    view of the same file, matched by tensor index)."""

    def __init__(self, flatbuffer: bytes):
        self.signature = benchmark_tflite.SignatureModel(flatbuffer)
        raw = self.signature.raw_interpreter()
        inputs = [detail["index"] for detail in raw.get_input_details()]
        outputs = [detail["index"] for detail in raw.get_output_details()]
        self.input_details = self.signature.input_details
        self.output_details = self.signature.output_details
        self.input_position = {name: inputs.index(detail["index"])
                               for name, detail in self.input_details.items()}
        self.output_position = {name: outputs.index(detail["index"])
                                for name, detail in self.output_details.items()}
        self.interpreter = _runtime().Interpreter.from_bytes(flatbuffer)

    is_streaming = benchmark_tflite.SignatureModel.is_streaming
    zero_states = benchmark_tflite.SignatureModel.zero_states

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        for name, value in inputs.items():
            self.interpreter.set_input(
                benchmark_tflite.quantize(value, self.input_details[name]),
                self.input_position[name])
        self.interpreter.invoke()
        return {name: benchmark_tflite.dequantize(
                    self.interpreter.get_output(position), self.output_details[name])
                for name, position in self.output_position.items()}
