"""Where training runs: one device or all local GPUs (tf.distribute).

Everything here is TensorFlow's own engine; kws only picks the strategy and says in the
log what it uses. Several machines (MultiWorkerMirroredStrategy) are not offered yet:
Keras 3's ``fit`` fails under that strategy (keras-team/keras#20585, open at Keras 3.15).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import logging

from kws.errors import InputError

DISTRIBUTIONS = ("default", "mirrored")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def make_strategy(distribution: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for ``--distribution``.

    ``default``: one device, the GPU when there is one. ``mirrored``: every local GPU (or,
    with none, every logical CPU device).
    """
    if distribution == "default":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    raise InputError(f"--distribution={distribution}: unknown; choose from "
                     + ", ".join(DISTRIBUTIONS))


def set_precision(precision: str) -> None:
    """Keras' global dtype policy: ``float32`` or a mixed one (float32 weights)."""
    if precision not in PRECISIONS:
        raise InputError(f"--mixed_precision={precision}: unknown; choose from "
                         + ", ".join(PRECISIONS))
    keras.mixed_precision.set_global_policy(precision)


def describe(strategy: tf.distribute.Strategy) -> str:
    """One log line: replicas, devices, and which GRU kernel Keras will use."""
    gpus = tf.config.list_logical_devices("GPU")
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        devices = strategy.extended.worker_devices
    else:  # the default strategy: Keras places the model on the first GPU, if any
        devices = [gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name]
    gru = ("fused cuDNN kernel" if gpus else
           "generic kernel (cuDNN needs a GPU)")
    return (f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s) on "
            f"{', '.join(devices)}; GRU: {gru}; precision "
            f"{keras.mixed_precision.global_policy().name}")


def log_strategy(strategy: tf.distribute.Strategy, batch_size: int,
                 learning_rate: float) -> None:
    logging.info("%s", describe(strategy))
    if strategy.num_replicas_in_sync > 1:
        logging.info("Global batch %d, %s clips per replica per step; learning rate %g as "
                     "given (not rescaled for the replicas)", batch_size,
                     f"{batch_size / strategy.num_replicas_in_sync:g}", learning_rate)
