"""The training recipe: optimizer, learning-rate schedule and loss, the same for every model.

A ``Recipe`` holds only what changes how the weights are fitted, not what the models are:
the study's layers and parameter counts stay as they are (dropout adds none).
"""

from __future__ import annotations

import dataclasses

import keras

from kws import mixup
from kws.config import BEST_OF_TIES, KEPT_EPOCHS, LR_SCHEDULES, check_choice
from kws.errors import InputError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the weights are fitted.

    Args:
        learning_rate: Adam's (peak) learning rate.
        lr_schedule: ``constant``, or ``cosine``: a linear warm-up over ``warmup_epochs``,
            then cosine decay to zero at the last epoch (as kws_streaming trains).
        warmup_epochs: Epochs of linear warm-up from zero (cosine only).
        weight_decay: Decoupled weight decay (AdamW) per step, relative to the learning
            rate; 0 is plain Adam.
        label_smoothing: Share of each target spread evenly over all classes, 0 to 1.
        dropout: Rate of the dropout after every hidden layer (training only; no
            parameters, nothing on the device).
        best_of_ties: ``first`` or ``last``: which of the epochs that tie on the best
            validation accuracy the run keeps.
        kept_epoch: ``best``, the epoch of the best validation accuracy, or ``last``, the
            final epoch, for validation that cannot rank epochs (synthetic voices score
            98-100 % from about epoch 15 on, so "best" is a draw among near ties).
        carried_state_ms: A recurrent model also learns each training clip after the end
            (this many milliseconds) of the clip before it in the batch, as a stream's
            never-reset state carries earlier audio in; 0 trains from a zero state only.
            Models without a state ignore it.
    """

    # The defaults are the recipe measured best on real voices (README, "Training recipe").
    learning_rate: float = 2e-3
    lr_schedule: str = "cosine"
    warmup_epochs: float = 2.0
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    dropout: float = 0.0
    best_of_ties: str = "first"
    kept_epoch: str = "best"
    carried_state_ms: float = 0.0

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise InputError(f"--learning_rate must be positive, got {self.learning_rate!r}")
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("best_of_ties", self.best_of_ties, BEST_OF_TIES)
        check_choice("kept_epoch", self.kept_epoch, KEPT_EPOCHS)
        for name in ("warmup_epochs", "weight_decay", "carried_state_ms"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name} must not be negative, got {getattr(self, name)!r}")
        for name in ("label_smoothing", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise InputError(f"--{name} must be in [0, 1), got {getattr(self, name)!r}")

    def learning_rates(self, epochs: int, steps_per_epoch: int):
        """The learning rate, or its schedule over ``epochs`` of ``steps_per_epoch``."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        total = epochs * steps_per_epoch
        warmup = min(round(self.warmup_epochs * steps_per_epoch), total - 1)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else self.learning_rate,
            decay_steps=total - warmup, warmup_target=self.learning_rate if warmup else None,
            warmup_steps=warmup)

    def optimizer(self, epochs: int, steps_per_epoch: int) -> keras.optimizers.Optimizer:
        rates = self.learning_rates(epochs, steps_per_epoch)
        if self.weight_decay:
            return keras.optimizers.AdamW(rates, weight_decay=self.weight_decay)
        return keras.optimizers.Adam(rates)

    def loss(self, reduction: str | None = "sum_over_batch_size") -> keras.losses.Loss:
        return SmoothedSparseCrossentropy(self.label_smoothing, reduction=reduction)


@keras.saving.register_keras_serializable(package="kws")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of class probabilities against integer labels, with label smoothing
    (Keras' sparse cross-entropy has none); also against mixup's targets (``kws.mixup``).

    Args:
        label_smoothing: Share of the target spread evenly over the classes; 0 is plain
            sparse cross-entropy.
    """

    def __init__(self, label_smoothing: float = 0.0, reduction="sum_over_batch_size",
                 name="smoothed_sparse_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        targets = mixup.target_probabilities(y_true, y_pred)
        return keras.losses.categorical_crossentropy(  # one row per score of a clip
            keras.ops.reshape(targets, [-1, classes]), keras.ops.reshape(y_pred, [-1, classes]),
            label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
