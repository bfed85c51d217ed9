"""Where training runs: one device, all local GPUs, or several machines (tf.distribute).

Everything here is TensorFlow's own engine; kws only picks the strategy and says in the
log what it uses. Several machines train through ``kws.collective``'s loop, since Keras 3's
``fit`` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585).
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from absl import logging

from kws.config import DISTRIBUTIONS, PRECISIONS, check_choice
from kws.errors import InputError


def place_features(requested: str) -> str:
    """Where training features are computed, for ``--features_on``: ``auto`` becomes
    ``accelerator`` when a GPU is visible, else ``pipeline``."""
    if requested != "auto":
        return requested
    return "accelerator" if tf.config.list_logical_devices("GPU") else "pipeline"


def make_strategy(distribution: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for ``--distribution``.

    ``default``: one device, the GPU when there is one. ``mirrored``: every local GPU (or,
    with none, every logical CPU device). ``multi_worker``: every GPU (or the CPU) of every
    machine in the cluster that the ``TF_CONFIG`` environment variable describes; create it
    before anything else runs TensorFlow ops.
    """
    check_choice("distribution", distribution, DISTRIBUTIONS)
    if distribution == "default":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    check_tf_config(os.environ.get("TF_CONFIG"))  # multi_worker
    return tf.distribute.MultiWorkerMirroredStrategy()


def check_tf_config(text: str | None) -> None:
    """Raises InputError unless ``text`` is a TF_CONFIG naming a cluster and this task."""
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise InputError(f"--distribution=multi_worker needs TF_CONFIG set on every worker, "
                         f"{example}")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        cluster[task["type"]][task["index"]]  # noqa: B018 (this task is in the cluster)
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise InputError(f"TF_CONFIG={text!r} is not a cluster with this task in it "
                         f"({type(error).__name__}: {error}); {example}") from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run: the ``chief`` task, else worker 0, and always
    outside a multi-worker cluster."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def set_precision(precision: str) -> None:
    """Keras' global dtype policy: ``float32`` or a mixed one (float32 weights)."""
    check_choice("mixed_precision", precision, PRECISIONS)
    keras.mixed_precision.set_global_policy(precision)


def describe(strategy: tf.distribute.Strategy) -> str:
    """One log line: replicas, devices, and which GRU kernel Keras will use."""
    gpus = tf.config.list_logical_devices("GPU")
    if isinstance(strategy, (tf.distribute.MirroredStrategy,
                             tf.distribute.MultiWorkerMirroredStrategy)):
        devices = strategy.extended.worker_devices
    else:  # the default strategy: Keras places the model on the first GPU, if any
        devices = [gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name]
    gru = ("fused cuDNN kernel" if gpus else
           "generic kernel (cuDNN needs a GPU)")
    name = ("MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
            if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            else type(strategy).__name__)
    return (f"{name}: {strategy.num_replicas_in_sync} replica(s) on "
            f"{', '.join(devices)}; GRU: {gru}; precision "
            f"{keras.mixed_precision.global_policy().name}")


def log_strategy(strategy: tf.distribute.Strategy, batch_size: int,
                 learning_rate: float) -> None:
    logging.info("%s", describe(strategy))
    if strategy.num_replicas_in_sync > 1:
        logging.info("Global batch %d, %s clips per replica per step; learning rate %g as "
                     "given (not rescaled for the replicas)", batch_size,
                     f"{batch_size / strategy.num_replicas_in_sync:g}", learning_rate)
