"""Mixup (Zhang et al., 2018) on the training features: each clip is mixed with another clip
of its batch, and its target with that clip's label by the same shares.

Each clip's share of its mix comes from the clip's own seed (the per-clip seeds of
``kws.data.pipeline``), so the input pipeline, which mixes the targets, and the train step,
which mixes the features, draw the same share without passing it between them. The other
clip of each mix is the clip at the mirrored place of the batch the train step sees (one
replica's share of it), which the loss finds the same way.

Mixed targets travel as ``(..., 2)`` floats, the label and the clip's own share, where plain
targets are integer labels of one rank less than the scores: the loss, the accuracy and the
multi-worker train step read both.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Apart from every salt of kws.data.augment, whose draws start from the same seeds.
_SHARE_SALT = 0x6D697875


def shares(seeds: tf.Tensor, alpha: float) -> tf.Tensor:
    """Each clip's own share of its mix, from its seed: Beta(``alpha``, ``alpha``) folded
    onto [0.5, 1], so that every mix is mostly its own clip, whose label the accuracy
    reads. ``seeds``: ``(batch,)`` int64; gives ``(batch,)`` float32."""
    def share(seed):
        draws = tf.random.stateless_gamma([2], seed=tf.stack([seed, _SHARE_SALT]), alpha=alpha)
        return tf.math.divide_no_nan(draws[0], draws[0] + draws[1])

    drawn = tf.map_fn(share, seeds, fn_output_signature=tf.float32)
    return tf.maximum(drawn, 1.0 - drawn)


def mixed_with_partner(values, clip_shares):
    """``values`` (batch first) mixed with themselves in mirrored batch order, each keeping
    its own share ``clip_shares``, whose axes are the first axes of ``values``."""
    clip_shares = keras.ops.cast(clip_shares, values.dtype)
    for _ in range(len(values.shape) - len(clip_shares.shape)):
        clip_shares = keras.ops.expand_dims(clip_shares, -1)
    return clip_shares * values + (1.0 - clip_shares) * keras.ops.flip(values, axis=0)


class Mixup(keras.layers.Layer):
    """``(features (batch, ...), seeds (batch,))`` to the features mixed in pairs, in
    front of the model the train step fits (``kws.training.fitted_model``).

    Args:
        alpha: Both parameters of the Beta distribution the shares come from; small values
            leave most clips nearly unmixed.
    """

    def __init__(self, alpha: float, **kwargs):
        super().__init__(**{"trainable": False, **kwargs})
        self.alpha = alpha

    def call(self, inputs):
        features, seeds = inputs
        return mixed_with_partner(features, shares(seeds, self.alpha))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def with_mixed_targets(batches: tf.data.Dataset, alpha: float) -> tf.data.Dataset:
    """``((inputs, seeds), labels)`` batches with each label packed with its clip's share:
    targets ``(batch, 2)`` for ``Mixup``'s features."""
    def packed(inputs, labels):
        _, seeds = inputs
        return inputs, tf.stack([tf.cast(labels, tf.float32), shares(seeds, alpha)], axis=-1)

    return batches.map(packed)


def split_targets(targets, scores):
    """The integer labels of ``targets`` and, for mixed targets, each clip's share (else
    None): mixed targets have the scores' rank and two values in their last axis."""
    if len(targets.shape) == len(scores.shape) and targets.shape[-1] == 2:
        return keras.ops.cast(targets[..., 0], "int32"), targets[..., 1]
    return keras.ops.cast(targets, "int32"), None


def target_probabilities(targets, scores):
    """The class probabilities ``targets`` stand for, shaped as ``scores``: one-hot labels,
    or for mixed targets the two labels of each mix by its shares."""
    labels, clip_shares = split_targets(targets, scores)
    classes = keras.ops.shape(scores)[-1]
    probabilities = keras.ops.one_hot(keras.ops.reshape(labels, keras.ops.shape(scores)[:-1]),
                                      classes, dtype=scores.dtype)
    if clip_shares is None:
        return probabilities
    return mixed_with_partner(probabilities,
                              keras.ops.reshape(clip_shares, keras.ops.shape(scores)[:-1]))


def correct(targets, scores):
    """1.0 for each score whose top class is its clip's own label (a mix's larger share),
    else 0.0."""
    labels, _ = split_targets(targets, scores)
    top = keras.ops.argmax(scores, axis=-1)
    labels = keras.ops.cast(keras.ops.reshape(labels, keras.ops.shape(scores)[:-1]), top.dtype)
    return keras.ops.cast(keras.ops.equal(top, labels), "float32")


def accuracy() -> keras.metrics.Metric:
    """The training accuracy, of plain and mixed targets alike."""
    return keras.metrics.MeanMetricWrapper(correct, name="accuracy")
