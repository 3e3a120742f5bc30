"""The training targets and the loss on them.

A photo may accept several classes (a long-sleeved top is a Pullover or a Shirt), so the loss is
set-valued: -log of the probability given to the accepted set, which for a Fashion-MNIST image is
ordinary cross-entropy. Photos of items no class fits (hats, shorts, skirts) are pulled towards a
uniform answer, so the model learns to be unsure of them. With teachers, a share of the loss matches
their softened answers (knowledge distillation).
"""

from __future__ import annotations

import numpy as np

from edge_runtime.core.contract import NUM_CLASSES
from toolkit.tf import tf


class Targets:
    """The columns of a training target row. The loss and the accuracy read them by these names.

    ACCEPTED: the classes that count as right (one-hot for a Fashion-MNIST image, several for a
    photo of a long-sleeved top, none for a hat); OOD: 1 where no class fits; TEACHER: the
    teachers' probabilities, present only when distilling.
    """

    ACCEPTED = slice(0, NUM_CLASSES)
    OOD = NUM_CLASSES
    TEACHER = slice(NUM_CLASSES + 1, 2 * NUM_CLASSES + 1)
    WIDTH = NUM_CLASSES + 1
    """Columns without a teacher."""


def targets(labels: np.ndarray) -> np.ndarray:
    """float32 [N, Targets.WIDTH] rows for Fashion-MNIST class ids."""
    out = np.zeros((len(labels), Targets.WIDTH), np.float32)
    out[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
    return out


def photo_targets(mask: np.ndarray) -> np.ndarray:
    """Target rows for photos: their accepted-class masks, flagged out-of-distribution where none is accepted."""
    return np.concatenate([mask, (mask.sum(axis=1, keepdims=True) == 0).astype(np.float32)], axis=1)


def with_teacher(rows: np.ndarray, teacher_probs: np.ndarray) -> np.ndarray:
    """Target rows with the teacher's answers in the Targets.TEACHER columns."""
    return np.concatenate([rows, teacher_probs], axis=1)


def only_where_right(rows: np.ndarray) -> np.ndarray:
    """Rows with teachers' answers, where an answer whose top class is not an accepted one is replaced
    by the accepted classes themselves (spread evenly): a teacher that calls a worn bag a dress teaches
    nothing there, rather than pulling the student to its mistake."""
    rows = rows.copy()
    accepted, answer = rows[:, Targets.ACCEPTED], rows[:, Targets.TEACHER]
    wrong = (accepted[np.arange(len(rows)), answer.argmax(axis=1)] == 0) & (accepted.sum(axis=1) > 0)
    rows[wrong, Targets.TEACHER] = accepted[wrong] / accepted[wrong].sum(axis=1, keepdims=True)
    return rows


def set_valued_loss(ood_weight: float, distill_weight: float = 0.0, temperature: float = 1.0,
                    set_focus: float = 0.0):
    """The loss on Targets rows; with `distill_weight`, the rows also carry the teacher's
    probabilities (Targets.TEACHER) and that share of the loss is the temperature-scaled
    KL divergence from the softened teacher to the softened model (Hinton et al. 2015), except on
    rows no class fits (a hat), whose teacher answer would pull against the uniform one.
    With `set_focus`, that share of the loss on a row accepting several classes is -log of the
    best accepted class alone: the camera shows one class and --min-score judges its probability,
    so a shoe split 0.45/0.40 between Sneaker and Ankle boot is right but left "unsure"."""
    def loss(y_true, y_pred):
        p = tf.clip_by_value(y_pred, 1e-7, 1.0)
        accepted, ood = y_true[:, Targets.ACCEPTED], y_true[:, Targets.OOD]
        # The epsilon keeps log() finite on rows tf.where does not pick: their gradient still flows.
        in_distribution = -tf.math.log(tf.reduce_sum(p * accepted, axis=1) + 1e-7)
        if set_focus:
            best = -tf.math.log(tf.reduce_max(p * accepted, axis=1) + 1e-7)
            in_distribution = (1.0 - set_focus) * in_distribution + set_focus * best
        uniform = -tf.reduce_mean(tf.math.log(p), axis=1) * ood_weight
        hard = tf.where(ood > 0, uniform, in_distribution)
        if not distill_weight:
            return hard
        # Softmax outputs: log-probabilities are logits up to a per-row constant softmax ignores.
        teacher = tf.nn.softmax(tf.math.log(tf.clip_by_value(y_true[:, Targets.TEACHER], 1e-7, 1.0)) / temperature)
        student = tf.nn.log_softmax(tf.math.log(p) / temperature)
        kl = tf.reduce_sum(teacher * (tf.math.log(teacher + 1e-12) - student), axis=1)
        taught = (1.0 - distill_weight) * hard + distill_weight * temperature ** 2 * kl
        return tf.where(ood > 0, hard, taught)  # where no class fits, a teacher's answer teaches nothing

    return loss


def set_accuracy(y_true, y_pred):
    """Top-1 is an accepted class (out-of-distribution photos count as right: no class can be)."""
    hit = tf.reduce_sum(tf.one_hot(tf.argmax(y_pred, axis=1), NUM_CLASSES) * y_true[:, Targets.ACCEPTED], axis=1)
    return tf.where(y_true[:, Targets.OOD] > 0, tf.ones_like(hit), hit)


set_accuracy.__name__ = "accuracy"  # history keys stay "accuracy" and "val_accuracy"
