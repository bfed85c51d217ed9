"""Simulated rooms: a bank of room impulse responses, made once and cached.

Each response comes from pyroomacoustics' image-source method in a random shoebox room
(walls, source and microphone drawn at random) whose wall absorption is tuned until the
response's measured reverberation time is the one drawn: Sabine's formula alone is off by
up to half in small and in very reverberant rooms.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import numpy as np
from absl import logging

from kws import fileio

ROOM_COUNT = 100  # rooms in the bank that training draws from
RT60_S = (0.1, 0.8)  # from a furnished office to a bare hall
ROOM_SIZE_M = ((2.5, 10.0), (2.5, 8.0), (2.4, 4.0))
WALL_CLEARANCE_M = 0.5
RT60_TOLERANCE = 0.05  # a room is kept once its measured RT60 is this close to the target
MAX_IMAGE_ORDER = 30  # cost grows with its cube; the tuned absorption makes up the tail
# pyroomacoustics spreads each image over a fractional-delay filter of 81 taps.
DIRECT_PATH_LEAD = 40
# Bump when the recipe below changes, so old banks are not reused.
ROOMS_VERSION = 2


def _measured_rt60(response: np.ndarray, sample_rate: int) -> float:
    import pyroomacoustics

    # The first 20 dB of decay, extrapolated to 60: the tail of a simulated response is
    # too short and too sparse for a full 60 dB.
    return float(pyroomacoustics.experimental.measure_rt60(response, fs=sample_rate,
                                                           decay_db=20))


def room_response(rt60_s: float, sample_rate: int, rng: np.random.Generator,
                  length: int) -> tuple[np.ndarray, float]:
    """One room's impulse response, ``length`` samples from just before the direct path,
    peak 1, and its measured RT60 in seconds (within 5 % of ``rt60_s``)."""
    import pyroomacoustics

    while True:  # rooms too large for the target, or whose tuning diverged, are redrawn
        size = np.array([rng.uniform(*bounds) for bounds in ROOM_SIZE_M])
        try:
            absorption, order = pyroomacoustics.inverse_sabine(rt60_s, size)
        except ValueError:  # no absorption reaches so short a time in so large a room
            continue
        source, microphone = (rng.uniform(WALL_CLEARANCE_M, size - WALL_CLEARANCE_M)
                              for _ in range(2))
        for _ in range(8):
            room = pyroomacoustics.ShoeBox(size, fs=sample_rate,
                                           materials=pyroomacoustics.Material(absorption),
                                           max_order=min(order, MAX_IMAGE_ORDER))
            room.add_source(source)
            room.add_microphone(microphone)
            room.compute_rir()
            response = np.asarray(room.rir[0][0], np.float64)
            measured = _measured_rt60(response, sample_rate)
            if abs(measured / rt60_s - 1) <= RT60_TOLERANCE:
                start = max(int(np.argmax(np.abs(response))) - DIRECT_PATH_LEAD, 0)
                response = response[start : start + length]
                response = np.pad(response, (0, length - len(response)))
                return (response / np.abs(response).max()).astype(np.float32), measured
            # Reverberation time is inversely proportional to absorption (Sabine).
            absorption = float(np.clip(absorption * measured / rt60_s, 0.005, 0.99))


def _bank_key(count: int, seed: int, sample_rate: int, length: int) -> str:
    identity = {"count": count, "seed": seed, "sample_rate": sample_rate, "length": length,
                "rt60_s": RT60_S, "version": ROOMS_VERSION,
                "pyroomacoustics": importlib.metadata.version("pyroomacoustics")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def room_bank(count: int, seed: int, sample_rate: int, length: int,
              cache_dir: str | Path) -> np.ndarray:
    """``count`` room responses ``(count, length)``, RT60 uniform over ``RT60_S``, from the
    cache when the same arguments made them (about 0.1 s a room otherwise)."""
    path = Path(cache_dir) / f"rooms-{_bank_key(count, seed, sample_rate, length)}.npz"
    cached = fileio.read_cached_arrays(path, ("responses",), "Room bank")
    if cached is not None:
        return cached["responses"]
    logging.info("Simulating %d rooms (RT60 %.1f-%.1f s; cache: %s)", count, *RT60_S, path)
    rng = np.random.default_rng([seed, 7])
    rooms = [room_response(rng.uniform(*RT60_S), sample_rate, rng, length)
             for _ in range(count)]
    responses = np.stack([response for response, _ in rooms])
    fileio.write_cached_arrays(path, responses=responses,
                               rt60_s=np.array([rt60 for _, rt60 in rooms]))
    return responses
