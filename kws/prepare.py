"""Decodes a folder of recordings once into sharded TFRecord files: ``python -m kws.prepare``.

    python -m kws.prepare --data_dir=DATA_DIR --out=prepared/
    python -m kws.train --prepared_dir=prepared/

Each split's clips, resampled to the model's rate and cut to one clip, go into
``<split>-NNNNN.tfrecord`` files, with ``prepared.json`` (labels, counts, the feature
configuration and the training split's normalisation). Training then streams them: an
epoch over a corpus of any size re-decodes no WAV file and holds no split in memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags, logging

from kws import data_flags
from kws.errors import InputError, describe_os_error

flags.adopt_module_key_flags(data_flags)  # listed by --help with this module's own
_OUT = flags.DEFINE_string("out", None, "Folder to write; it must not exist yet (or be "
                           "empty). It appears only once everything is written.")
_CLIPS_PER_SHARD = flags.DEFINE_integer(
    "clips_per_shard", 2000, "Clips per TFRecord file (2,000 one-second clips: 64 MB).",
    lower_bound=1)
_SEED = flags.DEFINE_integer(
    "seed", 0, "Fixes which other-word clips form _unknown_ and the noise of _silence_.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"kws.prepare: error: unexpected arguments {argv[1:]}; flags look like "
                 "--out=DIR")
    try:
        if not _OUT.value:
            raise InputError("--out is required: the folder to write, e.g. --out=prepared")
        from kws.data.prepared import PrepareConfig, prepare  # TensorFlow: after the checks

        config = PrepareConfig(out=Path(_OUT.value), clips_per_shard=_CLIPS_PER_SHARD.value,
                               seed=_SEED.value, **data_flags.data_settings())
        manifest = prepare(config)
    except InputError as error:
        sys.exit(f"kws.prepare: error: {error}")
    except OSError as error:  # a full disk, a folder made read-only: nothing is left behind
        sys.exit(f"kws.prepare: error: {describe_os_error(error)}; nothing was written")
    except KeyboardInterrupt:
        sys.exit("\nkws.prepare: interrupted; nothing was written")
    splits = manifest["splits"]
    print(f"\n{config.out}: {', '.join(manifest['labels'])}; " + ", ".join(
        f"{name} {split['clips']:,} clips in {len(split['shards'])} shards"
        for name, split in splits.items()))
    if manifest["skipped"]:
        logging.warning("Skipped %d unreadable files (listed in %s)", len(manifest["skipped"]),
                        config.out / "prepared.json")
    print(f"Train on it: python -m kws.train --prepared_dir={config.out}")


if __name__ == "__main__":
    app.run(main)
