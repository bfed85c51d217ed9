"""Training on several machines: a ``strategy.run`` loop in place of Keras' ``fit``.

Keras 3's ``fit`` does not work under ``tf.distribute.MultiWorkerMirroredStrategy`` (it
fails before the first step: keras-team/keras#20585), so each worker runs this loop
instead: the same compiled model, optimizer and Keras callbacks, one step per global
batch, gradients summed over every replica of every worker by TensorFlow's collective
all-reduce. Every worker ends each step with the same weights, so validation and
prediction run locally on each worker without any collective.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kws import mixup


def fit(model: keras.Model, training: tf.data.Dataset, epochs: int,
        callbacks: list[keras.callbacks.Callback], strategy: tf.distribute.Strategy,
        global_batch_size: int, per_clip_loss: keras.losses.Loss) -> None:
    """``model.fit(training, epochs=epochs)`` under ``strategy``, calling ``callbacks`` at
    the start and end of training and of each epoch with the logs ``fit`` gives them (loss,
    accuracy; ``Validation`` adds the validation figures).

    Args:
        model: Built and compiled in ``strategy.scope()``; its optimizer is used.
        training: Global batches of (inputs, labels), identical on every worker (the
            strategy gives each replica its share).
        epochs: Passes over ``training``.
        callbacks: Epoch-level Keras callbacks.
        strategy: The ``tf.distribute`` strategy the model was built under.
        global_batch_size: Clips per step over all replicas: the loss is averaged over it.
        per_clip_loss: The training loss, one value per clip (no reduction).
    """

    def replica_step(inputs, labels):
        with tf.GradientTape() as tape:
            scores = model(inputs, training=True)
            clip_losses = per_clip_loss(labels, scores)
            loss = tf.nn.compute_average_loss(clip_losses, global_batch_size=global_batch_size)
            scaled = model.optimizer.scale_loss(loss)  # the loss scale of mixed_float16
        gradients = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        correct = mixup.correct(labels, scores)
        return (tf.reduce_sum(clip_losses), tf.reduce_sum(correct),
                tf.cast(tf.size(correct), tf.float32))

    @tf.function(reduce_retracing=True)
    def train_step(inputs, labels):
        sums = strategy.run(replica_step, args=(inputs, labels))
        return [strategy.reduce("SUM", value, axis=None) for value in sums]

    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    # Every worker reads the whole dataset and keeps its share of each global batch, as
    # for clips in memory: sharding by file would give workers different clips per epoch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    distributed = strategy.experimental_distribute_dataset(training.with_options(options))
    callback_list.on_train_begin()
    for epoch in range(epochs):
        callback_list.on_epoch_begin(epoch)
        start = time.monotonic()
        sums = np.zeros(3)  # loss, correct clips, clips: over every replica
        for inputs, labels in distributed:
            sums += [float(value) for value in train_step(inputs, labels)]
        loss_sum, correct_sum, clips = sums
        logs = {"loss": loss_sum / clips, "accuracy": correct_sum / clips}
        callback_list.on_epoch_end(epoch, logs)
        logging.info("Epoch %d/%d: %.1f s, %s", epoch + 1, epochs, time.monotonic() - start,
                     ", ".join(f"{key} {value:.4f}" for key, value in logs.items()
                               if key != "seconds"))
    callback_list.on_train_end()


def compiled_forward(model: keras.Model):
    """The model's inference call as one traced function (called eagerly, the GRU's time
    loop runs op by op, about 50x slower), traced once for any batch size: TensorFlow
    counts the traces of every function made here together, and warns of retracing once
    a run's models reach five."""
    return tf.function(lambda features: model(features, training=False),
                       input_signature=[tf.TensorSpec((None, *model.input_shape[1:]),
                                                      tf.float32)])


def scores_and_labels(forward, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Class scores (from ``compiled_forward``) and labels of every batch, on this worker
    alone."""
    scores, labels = [], []
    for features, batch_labels in dataset:
        scores.append(np.asarray(forward(features)))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(scores), np.concatenate(labels)


def evaluate(forward, dataset: tf.data.Dataset) -> dict[str, float]:
    """``val_loss`` and ``val_accuracy`` over ``dataset``, on this worker alone."""
    scores, labels = scores_and_labels(forward, dataset)
    clip_losses = keras.losses.sparse_categorical_crossentropy(labels, scores)
    return {"val_loss": float(np.mean(clip_losses)),
            "val_accuracy": float(np.mean(np.argmax(scores, axis=-1) == labels))}


class Validation(keras.callbacks.Callback):
    """Adds ``val_loss`` and ``val_accuracy`` of the model that ``forward``
    (``compiled_forward``) runs on ``dataset`` (batches of features and labels, this worker
    alone) to each epoch's logs; list it before the callbacks that read them.

    The model being fitted may compute its features from waveforms itself
    (``kws.data.pipeline.TrainingFeatures`` on the accelerator) or mix them (``kws.mixup``);
    validation always scores the model that is saved, on the features the pipeline
    computes.
    """

    def __init__(self, forward, dataset: tf.data.Dataset):
        super().__init__()
        self.forward = forward
        self.dataset = dataset

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(evaluate(self.forward, self.dataset))


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker has called it: a one-number all-reduce."""
    strategy.reduce("SUM", strategy.run(tf.function(lambda: tf.constant(1.0))), axis=None)
