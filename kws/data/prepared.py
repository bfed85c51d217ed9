"""Clips decoded once into sharded TFRecord files, and read back as a training source.

``python -m kws.prepare`` writes a prepared folder; ``kws.train --prepared_dir`` streams
it, so an epoch re-decodes no WAV file and no split has to fit in memory::

    prepared.json               labels, counts, shards, the feature configuration, the
                                training split's normalisation, the settings it was made with
    training-00000.tfrecord     one record per clip: 16-bit samples at the model's rate, label
    validation-00000.tfrecord   ...
    background.npz              the _background_noise_ recordings, for mixing (when any)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kws import fileio
from kws.audio import AudioError, to_int16
from kws.config import DEFAULT_CACHE_DIR, FeatureConfig, Normalization
from kws.data.dataset import SkippedFile, empty_splits_error
from kws.data.download import check_data_sources, words_folder
from kws.data.folder import (
    SILENCE,
    ExtraClasses,
    FolderPlan,
    check_every_label_has_clips,
    decode_clips,
    load_background,
    plan_folder,
    silence_clips,
)
from kws.data.pipeline import ClipSource, fit_normalization
from kws.data.split import SPLITS, TRAINING, SplitSpec, speaker_of
from kws.errors import InputError

MANIFEST = "prepared.json"
FORMAT = "kws.prepared/1"
BACKGROUND = "background.npz"
# Files decoded, then written, at a time: the memory prepare needs does not grow with
# the corpus.
DECODE_CHUNK = 1000
# Serialized training clips held for shuffling (32 KB each at 16 kHz: 128 MB).
SHUFFLE_BUFFER = 4096
# Shards read at once when shuffling, so every batch mixes clips of several shards.
INTERLEAVED_SHARDS = 8
_RECORD = {"audio": tf.io.FixedLenFeature([], tf.string),
           "label": tf.io.FixedLenFeature([], tf.int64)}


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """One ``python -m kws.prepare`` run.

    Args:
        out: Folder to write; it must not exist or be empty.
        data_dir: Folder of ``<label>/*.wav`` recordings (or give ``dataset``).
        dataset: A published dataset, a key of ``kws.data.download.DATASETS``.
        wanted_words: Labels to keep; None means every word folder (the ten command words
            of a Speech Commands ``dataset``).
        silence_percentage: Size of the ``_silence_`` class, as a percentage of the wanted
            words' clips in each split.
        unknown_percentage: Size of the ``_unknown_`` class (clips of other words), likewise.
        split: How clips are assigned to training, validation and testing.
        seed: Fixes which other-word clips form ``_unknown_`` and the silence clips' noise.
        cache_dir: Where a ``dataset`` is downloaded to.
        clips_per_shard: Clips per TFRecord file (2,000 one-second clips: 64 MB).
        features: The front end: its sample rate and clip length fix the stored samples,
            the rest the normalisation.
    """

    out: Path
    data_dir: Path | None = None
    dataset: str | None = None
    wanted_words: tuple[str, ...] | None = None
    silence_percentage: float = 10.0
    unknown_percentage: float = 10.0
    split: SplitSpec = SplitSpec()
    seed: int = 0
    cache_dir: Path = DEFAULT_CACHE_DIR
    clips_per_shard: int = 2000
    features: FeatureConfig = FeatureConfig()

    def __post_init__(self) -> None:
        if self.clips_per_shard < 1:
            raise InputError(f"--clips_per_shard must be at least 1, got {self.clips_per_shard!r}")
        check_data_sources(data_dir=self.data_dir, dataset=self.dataset)
        if self.data_dir is None and self.dataset is None:
            raise InputError("give --data_dir (or --dataset); synthetic speech needs no "
                             "preparing")
        ExtraClasses(self.silence_percentage, self.unknown_percentage)  # raises when out of range


def clip_record(clip: np.ndarray, label: int) -> bytes:
    """One clip as a serialized ``tf.train.Example``: 16-bit little-endian samples, label."""
    samples = to_int16(clip).astype("<i2").tobytes()
    return tf.train.Example(features=tf.train.Features(feature={
        "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[samples])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


def parse_records(records: tf.Tensor, clip_samples: int) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch of ``clip_record``s back to (waveforms float32 in [-1, 1], labels int32)."""
    parsed = tf.io.parse_example(records, _RECORD)
    samples = tf.reshape(tf.io.decode_raw(parsed["audio"], tf.int16, little_endian=True),
                         (-1, clip_samples))
    return tf.cast(samples, tf.float32) / 32768.0, tf.cast(parsed["label"], tf.int32)


def records_source(shards: list[Path], size: int, clip_samples: int) -> ClipSource:
    """The clips of TFRecord ``shards`` as a ``ClipSource``.

    Shuffled, the shards come in a new order every epoch, ``INTERLEAVED_SHARDS`` are read
    at once and the records pass through a ``SHUFFLE_BUFFER``; unshuffled, they are read in
    the order they were written. Records are parsed a whole batch at a time.
    """
    paths = [str(path) for path in shards]

    def batches(batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
        if shuffle_seed is None:
            records = tf.data.TFRecordDataset(paths)
        else:
            records = (
                tf.data.Dataset.from_tensor_slices(paths)
                .shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
                .interleave(tf.data.TFRecordDataset, cycle_length=INTERLEAVED_SHARDS,
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .shuffle(SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
            )
        return records.batch(batch_size).map(lambda batch: parse_records(batch, clip_samples),
                                              num_parallel_calls=tf.data.AUTOTUNE)

    return ClipSource(size, batches, in_memory=False)


class _ShardWriter:
    """Writes one split's records into ``<split>-NNNNN.tfrecord`` files of at most
    ``clips_per_shard`` clips, counting clips per label."""

    def __init__(self, folder: Path, split: str, clips_per_shard: int, num_labels: int):
        self.folder, self.split, self.clips_per_shard = folder, split, clips_per_shard
        self.shards: list[dict] = []
        self.label_counts = np.zeros(num_labels, int)
        self.writer: tf.io.TFRecordWriter | None = None

    def write(self, clip: np.ndarray, label: int) -> None:
        if self.writer is None or self.shards[-1]["clips"] == self.clips_per_shard:
            self._close_shard()
            self.shards.append({"file": f"{self.split}-{len(self.shards):05d}.tfrecord",
                                "clips": 0})
            self.writer = tf.io.TFRecordWriter(str(self.folder / self.shards[-1]["file"]))
        self.writer.write(clip_record(clip, label))
        self.shards[-1]["clips"] += 1
        self.label_counts[label] += 1

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.shards[-1]["bytes"] = (self.folder / self.shards[-1]["file"]).stat().st_size

    def close(self) -> dict:
        self._close_shard()
        return {"clips": int(self.label_counts.sum()), "label_counts": self.label_counts.tolist(),
                "shards": self.shards}


def _write_split(plan: FolderPlan, split: str, writer: _ShardWriter, config: FeatureConfig,
                 background: tuple[np.ndarray, ...], rng: np.random.Generator,
                 progress: keras.utils.Progbar, skipped: list[SkippedFile]) -> None:
    """The split's recordings, then its silence clips, in ``load_folder``'s order."""
    files = plan.files_of(split)
    for start in range(0, len(files), DECODE_CHUNK):
        chunk = files[start:start + DECODE_CHUNK]
        for file, result in zip(chunk, decode_clips([f.path for f in chunk], config, progress),
                                strict=True):
            if isinstance(result, AudioError):
                skipped.append(SkippedFile(str(file.path), str(result)))
            else:
                writer.write(result, plan.labels.index(file.label))
    count = plan.silence_clips[split]
    for start in range(0, count, DECODE_CHUNK):
        # Drawn chunk by chunk from one generator: the same clips as drawn all at once.
        chunk = silence_clips(min(DECODE_CHUNK, count - start), background,
                              config.clip_samples, rng)
        for clip in chunk:
            writer.write(clip, plan.labels.index(SILENCE))
        progress.add(len(chunk))


def check_out_folder(out: Path) -> None:
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise InputError(f"--out={out} already exists and is not empty; choose a new folder "
                         "(a prepared folder is written whole or not at all)")


def _check_splits(plan: FolderPlan, sizes: dict[str, int]) -> None:
    empty = [name for name in SPLITS if sizes[name] == 0]
    if empty:
        raise empty_splits_error(plan.source, empty,
                                 [speaker_of(f.path, f.folder) for f in plan.files])


def prepare(config: PrepareConfig) -> dict:
    """Decodes the clips of ``config``'s folder split by split into TFRecord shards under
    ``config.out``, with ``prepared.json``; returns the manifest.

    The folder appears only when everything is written: an interrupted run leaves nothing.
    """
    check_out_folder(config.out)
    folder, words = words_folder(config.data_dir, config.dataset, config.wanted_words,
                                 config.cache_dir)
    plan = plan_folder(folder, words, config.split,
                       ExtraClasses(config.silence_percentage, config.unknown_percentage,
                                    config.seed))
    _check_splits(plan, {name: len(plan.files_of(name)) + plan.silence_clips[name]
                         for name in SPLITS})  # before decoding: an empty split wastes hours
    features = config.features
    skipped: list[SkippedFile] = []
    background = load_background(plan.data_dir, features, skipped)
    rng = plan.silence_generator()
    progress = keras.utils.Progbar(len(plan.files) + sum(plan.silence_clips.values()),
                                   unit_name="clip")
    logging.info("Preparing %d clips of %d classes from %s into %s", progress.target,
                 len(plan.labels), plan.data_dir, config.out)
    with fileio.staged_folder(config.out) as staging:
        splits = {}
        for split in SPLITS:
            writer = _ShardWriter(staging, split, config.clips_per_shard, len(plan.labels))
            _write_split(plan, split, writer, features, background, rng, progress, skipped)
            splits[split] = writer.close()
        check_every_label_has_clips(plan, sum(np.asarray(splits[name]["label_counts"])
                                              for name in SPLITS))
        _check_splits(plan, {name: splits[name]["clips"] for name in SPLITS})
        if background:
            np.savez(staging / BACKGROUND, *background)
        logging.info("Normalisation statistics of the %d training clips",
                     splits[TRAINING]["clips"])
        training = records_source([staging / shard["file"] for shard in splits[TRAINING]["shards"]],
                                  splits[TRAINING]["clips"], features.clip_samples)
        manifest = {
            "format": FORMAT,
            "source": plan.source,
            "labels": list(plan.labels),
            "features": dataclasses.asdict(features),
            "normalization": dataclasses.asdict(fit_normalization(training, features)),
            "splits": splits,
            "background": BACKGROUND if background else None,
            "skipped": [dataclasses.asdict(item) for item in skipped],
            "settings": json.loads(json.dumps(dataclasses.asdict(config), default=str)),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclasses.dataclass(frozen=True)
class PreparedClips:
    """A prepared folder, opened: the same interface as ``LabelledClips`` for training,
    with the clips left on disk.

    Args:
        folder: The prepared folder.
        labels: Class names; a clip's label index points into this tuple.
        source: Where the clips came from, for logs and reports.
        features: The feature configuration the clips were prepared for.
        normalization: Statistics of the training split's features.
        shards: TFRecord files per split.
        sizes: Clips per split.
        skipped: Files that could not be read when preparing.
        background: Noise recordings for mixing into training clips.
        synthetic_words: Always empty: prepared folders hold recordings only.
    """

    folder: Path
    labels: tuple[str, ...]
    source: str
    features: FeatureConfig
    normalization: Normalization
    shards: dict[str, list[Path]]
    sizes: dict[str, int]
    skipped: tuple[SkippedFile, ...] = ()
    background: tuple[np.ndarray, ...] = ()
    synthetic_words: tuple[str, ...] = ()

    def split_sizes(self) -> dict[str, int]:
        return dict(self.sizes)

    def check_splits_not_empty(self) -> None:
        empty = [name for name in SPLITS if self.sizes[name] == 0]
        if empty:
            raise empty_splits_error(self.source, empty)

    def clip_source(self, split: str) -> ClipSource:
        return records_source(self.shards[split], self.sizes[split], self.features.clip_samples)

    def training_normalization(self, config: FeatureConfig) -> Normalization:
        """The statistics computed when preparing, for features computed as ``config``
        says; other features need the folder prepared again."""
        if config != self.features:
            changed = [field.name for field in dataclasses.fields(config)
                       if getattr(config, field.name) != getattr(self.features, field.name)]
            raise InputError(f"--prepared_dir={self.folder}: prepared for other features "
                             f"({', '.join(changed)}); prepare it again with these")
        return self.normalization


def load_prepared(folder: str | Path) -> PreparedClips:
    """Opens a folder written by ``prepare``, checking that every shard is there whole."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(f"--prepared_dir={folder}: no {MANIFEST}; write the folder with "
                         f"python -m kws.prepare --data_dir=DATA_DIR --out={folder}")
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT!r}")
        splits = manifest["splits"]
        shards = {name: [folder / shard["file"] for shard in splits[name]["shards"]]
                  for name in SPLITS}
        expected_bytes = {folder / shard["file"]: shard["bytes"]
                          for name in SPLITS for shard in splits[name]["shards"]}
        prepared = PreparedClips(
            folder=folder, labels=tuple(manifest["labels"]),
            source=f"{manifest['source']}, prepared in {folder}",
            features=FeatureConfig(**manifest["features"]),
            normalization=Normalization(**{key: tuple(value) for key, value
                                           in manifest["normalization"].items()}),
            shards=shards, sizes={name: splits[name]["clips"] for name in SPLITS},
            skipped=tuple(SkippedFile(**item) for item in manifest["skipped"]),
            background=_load_background(folder, manifest["background"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a readable kws.prepare manifest ({error})") from None
    for shard, size in expected_bytes.items():
        actual = shard.stat().st_size if shard.is_file() else None
        if actual != size:
            found = "missing" if actual is None else f"{actual:,} bytes, not {size:,}"
            raise InputError(f"{shard}: {found}; the prepared folder is damaged, prepare it "
                             "again")
    return prepared


def _load_background(folder: Path, name: str | None) -> tuple[np.ndarray, ...]:
    if name is None:
        return ()
    with np.load(folder / name, allow_pickle=False) as recordings:  # np.savez's arr_0, ...
        return tuple(recordings[f"arr_{i}"] for i in range(len(recordings.files)))
