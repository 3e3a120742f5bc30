"""`fmnist-edge adapt DIR`: teach the device's own model from the frames a person labelled there, in
seconds, with nothing but the base install; new classes included.

The network stays as it is (its int8 body, byte for byte); its last layer is fit again on the
network's own features of the labelled frames (and their mirror images), starting from the layer it
had, pulled back towards it, and with Fashion-MNIST training images replayed where the dataset is on
the device, so what the model knew is kept. A photo class given with --new-class becomes a class of
its own, beyond the ten, its weights started from the mean of its frames' features (imprinting).

Nothing is lost: the frames are split by a hash of their paths; the layer is fit on one part and
checked on the other against the starting model (and on the Fashion-MNIST test set when it is on the
device), and only a result that does not score worse is fit again on every frame and written, as a
new ONNX file (atomically, never over the file it came from) that carries its metadata, what it was
adapted from, its own reference answers and its checksum: `verify`, `info`, `camera` take it as any
other file.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.core.contract import MAX_CLASSES, NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import write_bytes_atomic
from edge_runtime.core.metadata import ModelMetadata, onnx_metadata_props
from edge_runtime.core.modelfile import ONNX_CHECKSUM_KEY, ONNX_REFERENCES_KEY, PLACEHOLDER, seal
from edge_runtime.core.onnx_write import new_head
from edge_runtime.core.references import References, this_machine
from edge_runtime.data import photos as photo_folder
from edge_runtime.data.scoring import DEFAULT_MIN_SCORE
from edge_runtime.field.features import Base, Featurizer, load_base
from edge_runtime.field.replay import load_bank

log = logging.getLogger(__name__)

OUTPUT = "probabilities"
MIN_FRAMES = 4
"""Fewest labelled frames adapting will work from; and for each new class, fewest frames of it."""
MAX_TEST_DROP = 0.005
"""The most Fashion-MNIST test accuracy an adapted model may lose (when the dataset is on the device)."""


@dataclass(frozen=True)
class AdaptSettings:
    """How the last layer is fit (measured in benchmarks/field_loop.py; docs/field-loop.md)."""

    steps: int = 600
    """Full-batch Adam steps."""
    lr: float = 0.01
    replay_per_class: int = 300
    """Fashion-MNIST training images per class replayed beside the user's frames."""
    replay_weight: float = 4.0
    """Weight of the replayed images and banked photos against the user's frames, in all (each set's loss
    is its mean)."""
    keep: float = 0.01
    """Pull of the ten classes' weights back towards the starting model's (L2)."""
    ood_weight: float = 0.5
    """Pull towards a uniform answer on frames labelled "none of these"."""


@dataclass
class AdaptReport:
    path: str
    source: str
    frames: int
    """Labelled frames used, every one in the written model."""
    new_classes: list[str]
    class_names: list[str]
    held_out: dict
    """On the frames set aside by hash: {"frames", "before", "after"} (share right)."""
    fmnist_test: dict | None
    """{"before", "after"} on the Fashion-MNIST test set's first ten classes; None without the dataset."""
    replay_images: int
    seconds: float
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def format_text(self) -> str:
        held = self.held_out
        lines = [f"adapted {self.source} on {self.frames} labelled frames in {self.seconds:.1f} s: {self.path}",
                 f"  classes: {', '.join(self.class_names[NUM_CLASSES:]) or 'the ten'}"
                 f"{' (new)' if self.new_classes else ''}",
                 f"  frames set aside: {held['before']:.3f} -> {held['after']:.3f} right of {held['frames']}"]
        if self.fmnist_test:
            lines.append(f"  Fashion-MNIST test: {self.fmnist_test['before']:.4f} -> {self.fmnist_test['after']:.4f}")
        else:
            lines.append("  Fashion-MNIST test: not checked (the dataset is not on this device: "
                         "apt-get install dataset-fashion-mnist)")
        return "\n".join(lines)


@dataclass
class Frames:
    """Labelled frames as the fit takes them: features, and for each the classes that count as right."""

    features: np.ndarray
    accepted: np.ndarray
    """float32 [N, classes]: 1 where a class is right; all 0 for "none of these"."""

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, pick) -> Frames:
        return Frames(self.features[pick], self.accepted[pick])


def accepted_classes(chosen: Sequence[photo_folder.Photo], extra: Sequence[str]) -> np.ndarray:
    """float32 [N, 10+K]: a photo whose class is one of the `extra` classes (the user's, beyond the ten)
    accepts that class alone; the others the Fashion-MNIST classes they say."""
    out = np.zeros((len(chosen), NUM_CLASSES + len(extra)), np.float32)
    for i, photo in enumerate(chosen):
        if photo.photo_class in extra:
            out[i, NUM_CLASSES + list(extra).index(photo.photo_class)] = 1.0
        else:
            out[i, sorted(photo.accepted)] = 1.0
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _gradients(sets, weights, bias, start_w, s: AdaptSettings):
    """The loss's gradients: each set's mean set-valued cross-entropy (uniform pull where nothing is
    accepted), weighted, and the pull of the ten classes' weights back to the starting ones."""
    gw, gb = np.zeros_like(weights), np.zeros_like(bias)
    for frames, weight in sets:
        if not len(frames) or not weight:
            continue
        p = softmax(frames.features @ weights + bias)
        mass = frames.accepted.sum(axis=1, keepdims=True)
        known = (mass > 0)[:, 0]
        target = np.where(known[:, None], p * frames.accepted / np.maximum((p * frames.accepted).sum(1, keepdims=True),
                                                                            1e-12), 1.0 / p.shape[1])
        scale = np.where(known, 1.0, s.ood_weight)[:, None] * weight / len(frames)
        delta = (p - target) * scale  # d(loss)/d(logits) of -log p(accepted set), or of the uniform pull
        gw += frames.features.T @ delta
        gb += delta.sum(axis=0)
    gw[:, :NUM_CLASSES] += 2 * s.keep * (weights[:, :NUM_CLASSES] - start_w)
    return gw, gb


def fit_head(user: Frames, replay: Frames, start_w: np.ndarray, start_b: np.ndarray, new: int,
             s: AdaptSettings) -> tuple[np.ndarray, np.ndarray]:
    """The last layer fit on the user's frames and the replayed images (Adam, full batch)."""
    return fit_sets([(user, 1.0), (replay, s.replay_weight)], start_w, start_b, new, s)


def fit_sets(sets: list[tuple[Frames, float]], start_w: np.ndarray, start_b: np.ndarray, new: int,
             s: AdaptSettings) -> tuple[np.ndarray, np.ndarray]:
    """The last layer fit on weighted sets of frames, each set's loss its mean; the first set is the user's,
    which the new classes are imprinted from (benchmarks/adapt_sweep.py weighs the replay's parts apart)."""
    weights, bias = _start(sets[0][0], start_w, start_b, new)
    start_w = start_w[:, :NUM_CLASSES]
    moments = [np.zeros_like(weights), np.zeros_like(weights), np.zeros_like(bias), np.zeros_like(bias)]
    for step in range(1, s.steps + 1):
        gw, gb = _gradients(sets, weights, bias, start_w, s)
        for i, (param, grad) in enumerate(((weights, gw), (bias, gb))):
            m, v = moments[2 * i], moments[2 * i + 1]
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad * grad
            param[...] -= s.lr * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return weights, bias


def _start(user: Frames, start_w: np.ndarray, start_b: np.ndarray, new: int) -> tuple[np.ndarray, np.ndarray]:
    """The starting layer, with each new class imprinted: the mean of its frames' features, scaled to the
    ten classes' weights, and their mean bias."""
    weights = np.concatenate([start_w, np.zeros((start_w.shape[0], new), np.float32)], axis=1)
    bias = np.concatenate([start_b, np.full(new, start_b.mean(), np.float32)])
    norm, first = np.linalg.norm(start_w, axis=0).mean(), start_w.shape[1]
    for k in range(first, first + new):
        mean = user.features[user.accepted[:, k] > 0].mean(axis=0)
        weights[:, k] = mean / max(np.linalg.norm(mean), 1e-6) * norm
    return weights.astype(np.float32), bias.astype(np.float32)


def right_share(frames: Frames, weights: np.ndarray, bias: np.ndarray) -> float:
    """Share of frames whose top class is accepted (frames of "none of these": left unsure, their top
    probability below the camera's default --min-score)."""
    if not len(frames):
        return 0.0
    p = softmax(frames.features @ weights + bias)
    top = p.argmax(axis=1)
    width = min(frames.accepted.shape[1], p.shape[1])
    right = np.array([t < width and frames.accepted[i, t] > 0 for i, t in enumerate(top)])
    unsure = frames.accepted.sum(axis=1) == 0
    return float(np.where(unsure, p.max(axis=1) < DEFAULT_MIN_SCORE, right).mean())


def labelled_frames(folder: str | Path, new_classes: Sequence[str]) -> list[photo_folder.Photo]:
    """The folder's labelled frames, refused in one line when they cannot teach what is asked."""
    chosen = photo_folder.load_photos(folder)
    if len(chosen) < MIN_FRAMES:
        raise FmnistEdgeError(f"{folder}: {len(chosen)} labelled frames; adapting needs at least {MIN_FRAMES}: label "
                              f"more with `fmnist-edge label {folder}`")
    for name in new_classes:
        count = sum(p.photo_class == name for p in chosen)
        if count < MIN_FRAMES:
            raise FmnistEdgeError(f"{folder}: {count} frames of the new class {name!r}; it needs at least "
                                  f"{MIN_FRAMES}: label more of them (photo class {name})")
    return chosen


def check_new_classes(new_classes: Sequence[str], base: Base) -> list[str]:
    names = list(base.metadata.class_names)
    wanted = [n.strip() for n in new_classes]
    taken = {*names, photo_folder.UNLABELLED, photo_folder.NONE_OF_THESE}
    bad = [n for n in wanted if not n or len(n) > 64 or not n.isprintable() or n in taken]
    if bad or len(set(wanted)) != len(wanted):
        raise FmnistEdgeError(f"--new-class {', '.join(bad) or 'twice'}: a new class needs a name of its own, not one "
                              f"the model has ({', '.join(names)}), none, unlabelled, or a name given twice")
    if len(names) + len(wanted) > MAX_CLASSES:
        raise FmnistEdgeError(f"--new-class: a model names at most {MAX_CLASSES} classes")
    return wanted


def _user_frames(chosen, featurize: Featurizer, extra: list[str]) -> tuple[Frames, Frames]:
    """(each frame, its mirror image) through the camera's preprocessing and the network."""
    images = photo_folder.prepare(chosen)
    accepted = accepted_classes(chosen, extra)
    return Frames(featurize(images), accepted), Frames(featurize(images[:, :, ::-1]), accepted)


def _fmnist(data_dir, featurize: Featurizer, width: int, settings: AdaptSettings):
    """(replay Frames, test Frames) from the Fashion-MNIST files on the device, or (empty, None)."""
    from edge_runtime.data import fashion_mnist

    try:
        fashion_mnist.locate(data_dir, allow_download=False)
        train = fashion_mnist.load_split("train", data_dir)
        test = fashion_mnist.load_split("test", data_dir)
    except FmnistEdgeError:
        log.info("Fashion-MNIST is not on this device: no replay of it, no test-set check")
        return Frames(np.zeros((0, featurize.width), np.float32), np.zeros((0, width), np.float32)), None
    rng = np.random.default_rng(0)
    pick = np.concatenate([rng.choice(np.flatnonzero(train[1] == c), settings.replay_per_class, replace=False)
                           for c in range(NUM_CLASSES)])
    return _fmnist_frames(train[0][pick], train[1][pick], featurize, width), \
        _fmnist_frames(test[0], test[1], featurize, width)


def _fmnist_frames(images: np.ndarray, labels: np.ndarray, featurize: Featurizer, width: int) -> Frames:
    accepted = np.zeros((len(labels), width), np.float32)
    accepted[np.arange(len(labels)), labels] = 1.0
    return Frames(featurize(images), accepted)


def _test_accuracy(frames: Frames, weights: np.ndarray, bias: np.ndarray) -> float:
    logits = frames.features @ weights[:, :NUM_CLASSES] + bias[:NUM_CLASSES]  # the ten: Fashion-MNIST's
    return float((logits.argmax(axis=1) == frames.accepted.argmax(axis=1)).mean())


def bank_frames(bank: tuple[np.ndarray, np.ndarray], width: int) -> Frames:
    """A replay bank (field.replay.load_bank: features, accepted ten classes) as Frames of `width` classes."""
    return Frames(bank[0], np.pad(bank[1], ((0, 0), (0, width - NUM_CLASSES))))


def _join(*parts: Frames) -> Frames:
    return Frames(np.concatenate([p.features for p in parts]), np.concatenate([p.accepted for p in parts]))


def _checked(base: Base, chosen, frames: Frames, mirrored: Frames, replay: Frames, test: Frames | None,
             width: int, settings: AdaptSettings) -> tuple[dict, dict | None]:
    """Fit on the frames not set aside, score on those set aside and on the test set against the starting
    model; refuse (one line, nothing written) a result that scores worse."""
    aside = np.array([p.split == "held-out" for p in chosen])
    for k in range(NUM_CLASSES, width):  # a new class with no frame left to fit: none of its frames is set aside
        of_class = frames.accepted[:, k] > 0
        if not (of_class & ~aside).any():
            aside &= ~of_class
    fit = _join(frames[~aside], mirrored[~aside])
    if not len(fit):
        fit, aside = _join(frames, mirrored), np.zeros(len(chosen), bool)
    weights, bias = fit_head(fit, replay, base.weights, base.bias, width - base.weights.shape[1], settings)
    held = {"frames": int(aside.sum()), "before": right_share(frames[aside], base.weights, base.bias),
            "after": right_share(frames[aside], weights, bias)}
    if held["frames"] and held["after"] < held["before"]:
        raise FmnistEdgeError(f"adapting would make the model worse on the {held['frames']} frames set aside "
                              f"({held['before']:.3f} -> {held['after']:.3f} right); nothing written: label more "
                              "frames, or check their labels")
    scores = None
    if test is not None:
        scores = {"before": _test_accuracy(test, base.weights, base.bias), "after": _test_accuracy(test, weights, bias)}
        if scores["after"] < scores["before"] - MAX_TEST_DROP:
            raise FmnistEdgeError(f"adapting would cost {100 * (scores['before'] - scores['after']):.2f} points on the "
                                  f"Fashion-MNIST test set (more than {100 * MAX_TEST_DROP:.1f}); nothing written")
    return held, scores


def adapt(folder: str | Path, out: str | Path, model: str | Path | None = None, new_classes: Sequence[str] = (),
          data_dir: str | None = None, settings: AdaptSettings | None = None) -> AdaptReport:
    """Adapt `model` (the bundled ONNX model by default) to FOLDER's labelled frames; write OUT."""
    start, settings, out = time.perf_counter(), settings or AdaptSettings(), Path(out)
    base = load_base(model)
    if out.suffix.lower() != ".onnx":
        raise FmnistEdgeError(f"--out {out}: adapt writes an ONNX model: give a name ending in .onnx")
    if out.exists() and out.resolve() == base.path.resolve():
        raise FmnistEdgeError(f"--out {out}: that is the model adapted from; adapting never replaces it")
    new = check_new_classes(new_classes, base)
    chosen = labelled_frames(folder, new)
    names = [*base.metadata.class_names, *new]
    log.info("adapting %s on %d labelled frames of %s", base.path.name, len(chosen), folder)
    featurize = Featurizer(base)
    frames, mirrored = _user_frames(chosen, featurize, names[NUM_CLASSES:])
    replay, test = _fmnist(data_dir, featurize, len(names), settings)
    bank = load_bank(base)
    if bank is not None:  # the model's own features of real photos of every class
        replay = _join(replay, bank_frames(bank, len(names)))
    log.info("replaying %d Fashion-MNIST images and %d banked photos", len(replay) - (0 if bank is None else
             len(bank[0])), 0 if bank is None else len(bank[0]))
    held, scores = _checked(base, chosen, frames, mirrored, replay, test, len(names), settings)
    weights, bias = fit_head(_join(frames, mirrored), replay, base.weights, base.bias, len(new), settings)
    report = AdaptReport(str(out), str(base.path), len(chosen), new, names, held, scores, len(replay.features),
                         0.0, asdict(settings))
    write_adapted(base, weights, bias, names, report, out)
    report.seconds = round(time.perf_counter() - start, 2)
    log.info("wrote %s", out)
    return report


def write_adapted(base: Base, weights: np.ndarray, bias: np.ndarray, names: list[str], report: AdaptReport,
                  out: Path) -> None:
    """The adapted model with its metadata, its own reference answers and its checksum, written atomically
    and only once it loads and gives the answers its references hold."""
    import onnxruntime as ort

    bare = new_head(base.data, base.features, weights, bias, OUTPUT, {})
    session = ort.InferenceSession(bare, providers=["CPUExecutionProvider"])
    refs = base.references
    probs = session.run(None, {session.get_inputs()[0].name: refs.images.astype(np.float32)})[0]
    rule = {**refs.rule, "machine": this_machine(), "runtime": f"onnxruntime {ort.__version__}"}
    blob = References(refs.images, probs.astype(np.float32), refs.labels, refs.stratum, refs.weights, rule).to_bytes()
    meta = ModelMetadata.from_dict({**base.metadata.to_dict(), "class_names": names,
                                    "test_accuracy": report.fmnist_test["after"] if report.fmnist_test else None,
                                    "extra": {**base.metadata.extra, "adapted": _provenance(base, report)}})
    props = {**onnx_metadata_props(meta), ONNX_REFERENCES_KEY: base64.b64encode(blob).decode(),
             ONNX_CHECKSUM_KEY: PLACEHOLDER.decode()}
    data = seal(new_head(base.data, base.features, weights, bias, OUTPUT, props), ".onnx")
    write_bytes_atomic(out, data)


def _provenance(base: Base, report: AdaptReport) -> dict:
    import hashlib

    return {"from": base.path.name, "from_sha256": hashlib.sha256(base.data).hexdigest(), "frames": report.frames,
            "new_classes": report.new_classes, "held_out": report.held_out, "fmnist_test": report.fmnist_test,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
