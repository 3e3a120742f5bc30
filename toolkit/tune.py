"""`fmnist-edge tune`: hyperparameter search with Keras Tuner, on one machine or several.

Search spaces by name: `seed-004` is exactly the seeds' grid on seed-b (learning rate 1e-3, 1e-4,
1e-5; batch size 32, 64, 128; dropout 0.1, 0.3, 0.5 before the output layer), `edge` is the edge
architecture family (toolkit.models.EDGE_SPACE). Trials are selected on the validation split only;
the best hyperparameters are then trained again by `toolkit.train` into DIR/best/ (as `train`
writes it, ready for `export`), and its test accuracy is reported once, at the end.

Distribution uses Keras Tuner's own chief/worker protocol (gRPC): the chief holds the oracle and
hands out trials, each worker asks for one, trains it and reports back, so a search spreads over
several machines with nothing but this command on each. Each trial's worker is reported to the
oracle as a metric named `worker:<id>`, so the chief knows who ran what. An interrupted search
resumes from DIR.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edge_runtime.web.address import parse_host_port
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import write_json_atomic, write_text_atomic
from edge_runtime.report.tables import markdown_table

# The search's tables (SPACES, TUNERS) are read by the CLI for its choices, so TensorFlow, Keras
# Tuner and the training side are imported inside the functions that search.

log = logging.getLogger(__name__)

TUNERS = ("grid", "random", "bayesian", "hyperband")
ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
WORKER_METRIC = "worker:"


@dataclass(frozen=True)
class Space:
    """A named search space: `sample(hp)` returns (arch, arch_params, train_params)."""

    sample: Callable
    size: int | None
    """Number of distinct configurations, None when continuous."""
    recipe: str
    """How a trial trains (toolkit/recipes/NAME.toml): augmentation, the validation split, patience."""
    tuner: str
    """The tuner when --tuner is not given."""


def _seed_004(hp) -> tuple[str, dict, dict]:
    lr = hp.Choice("lr", [1e-3, 1e-4, 1e-5])
    batch = hp.Choice("batch_size", [32, 64, 128])
    dropout = hp.Choice("dropout", [0.1, 0.3, 0.5])
    return "seed-b", {"dropout": dropout}, {"lr": lr, "batch_size": batch}


def _edge(hp) -> tuple[str, dict, dict]:
    from toolkit.models import EDGE_SPACE

    params = {name: hp.Choice(name, values) for name, values in EDGE_SPACE.items()}
    lr = hp.Choice("lr", [1e-3, 2e-3, 4e-3])
    return "edge", params, {"lr": lr}


SPACES = {
    "seed-004": Space(_seed_004, 27, recipe="tune-seed-004", tuner="grid"),
    "edge": Space(_edge, None, recipe="tune-edge", tuner="random"),
}


@dataclass
class TuneConfig:
    space: str = "seed-004"
    tuner: str | None = None
    """grid, random, bayesian or hyperband; default: the space's own (seed-004 grid, edge random)."""
    max_trials: int | None = None
    """Trials to run (grid, random, bayesian); default: the whole grid, or 20. Hyperband derives its own."""
    epochs: int = 10
    limit: int | None = None
    out: str = "runs/tune"
    seed: int = 0
    data_dir: str | None = None
    oracle: str | None = None
    """HOST:PORT of the chief's oracle, for a distributed search."""
    role: str | None = None
    """"chief" or "worker"."""
    worker_id: str | None = None


@dataclass
class TrialRow:
    trial_id: str
    status: str
    worker: str
    hyperparameters: dict
    val_accuracy: float | None
    params: int | None
    macs: int | None
    seconds: float | None


@dataclass
class TuneReport:
    space: str
    tuner: str
    out: str
    role: str
    trials: list[TrialRow] = field(default_factory=list)
    best: dict | None = None
    """The best trial's hyperparameters, validation accuracy and, once trained again, test accuracy."""
    worker: str = ""
    """This process's name in the search: "local", "chief" or the worker's --worker-id."""
    oracle: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def format_text(self) -> str:
        if self.role == "worker":
            return f"worker {self.worker} done; the chief at {self.oracle} has the results"
        lines = [results_markdown(self.trials)]
        if self.best:
            best = self.best
            lines.append(f"best: trial {best['trial_id']} {best['hyperparameters']}: validation accuracy "
                         f"{best['val_accuracy']:.4f}; trained again into {self.out}/best: test accuracy "
                         f"{best['test_accuracy']:.4f}")
        return "\n".join(lines)


def trial_config(cfg: TuneConfig, hp, epochs: int, **extra):
    """How a configuration trains (a toolkit.train.TrainConfig), in a trial and again for DIR/best:
    the same settings in both, the space's recipe filling the rest."""
    from toolkit.train import TrainConfig

    space = SPACES[cfg.space]
    arch, arch_params, train_params = space.sample(hp)
    return TrainConfig.from_recipe(space.recipe, arch=arch, arch_params=arch_params, epochs=epochs, seed=cfg.seed,
                                   **train_params, **extra)


class ZooHyperModel:
    """Builds a trial's model and trains it with toolkit.train's pipeline on the validation split."""

    def __init__(self, space: Space, cfg: TuneConfig, worker: str):
        self.space, self.cfg, self.worker = space, cfg, worker

    @functools.cached_property
    def splits(self):
        """(train, validation), loaded on the first trial: a chief that only hands out trials never needs them."""
        from edge_runtime.data import fashion_mnist
        from toolkit.train import TrainConfig
        from toolkit.train.pipeline import split_validation

        images, labels = fashion_mnist.load_split("train", self.cfg.data_dir, limit=self.cfg.limit)
        val_split = TrainConfig.from_recipe(self.space.recipe).val_split
        return split_validation(images, labels, val_split, self.cfg.seed)

    def build(self, hp):
        from toolkit import models
        from toolkit.tf import keras

        arch, arch_params, _ = self.space.sample(hp)
        keras.utils.set_random_seed(self.cfg.seed)
        return models.build_model(arch, **arch_params)

    def fit(self, hp, model, *args, callbacks=(), epochs=None, initial_epoch=0, **kwargs) -> dict:
        from toolkit import models
        from toolkit.train.run import fit

        tc = trial_config(self.cfg, hp, epochs or self.cfg.epochs)
        start = time.perf_counter()
        history = fit(model, *self.splits, tc, callbacks=list(callbacks), initial_epoch=initial_epoch)
        seconds = time.perf_counter() - start
        return {"val_accuracy": float(max(history.history["val_accuracy"])),
                "val_loss": float(min(history.history["val_loss"])),
                "seconds": seconds, "params": float(model.count_params()), "macs": float(models.count_macs(model)),
                WORKER_METRIC + self.worker: 1.0}


def _hypermodel_class():
    """A keras_tuner.HyperModel subclass made on demand (keras_tuner is imported only when tuning)."""
    import keras_tuner as kt

    class _Hyper(ZooHyperModel, kt.HyperModel):
        def __init__(self, *args):
            ZooHyperModel.__init__(self, *args)
            kt.HyperModel.__init__(self)

    return _Hyper


def _distribution(cfg: TuneConfig) -> tuple[str, str]:
    """Set Keras Tuner's environment for the role; returns (role, worker name)."""
    for name in ENV:
        os.environ.pop(name, None)
    if cfg.oracle is None:
        return "local", cfg.worker_id or "local"
    host, port = parse_host_port(cfg.oracle, "--oracle", default_host=None)
    os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"] = host, str(port)
    name = "chief" if cfg.role == "chief" else cfg.worker_id
    os.environ["KERASTUNER_TUNER_ID"] = name
    return cfg.role, name


def _grid_oracle_class():
    """An oracle that hands out every combination of the space's choices once, in order.

    Keras Tuner's random oracle gives up after 20 draws in a row that hit tried combinations, so it
    can stop short of a small grid (26 of 27 here), and its GridSearch oracle keeps its queue out of
    the saved state, so it cannot resume. This one asks only the oracle's saved record of tried
    values, so it resumes, and runs on the chief for a distributed search like any oracle.
    """
    import keras_tuner as kt

    class GridOracle(kt.Oracle):
        def populate_space(self, trial_id):
            space = self.get_space().space
            names = [hp.name for hp in space]
            for combination in itertools.product(*(hp.values for hp in space)):
                values = dict(zip(names, combination, strict=True))
                if not self._duplicate(values):
                    return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}
            if self.ongoing_trials:
                return {"status": kt.engine.trial.TrialStatus.IDLE, "values": None}
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    return GridOracle


def make_tuner(cfg: TuneConfig, worker: str):
    import keras_tuner as kt

    space = SPACES[cfg.space]
    hypermodel = _hypermodel_class()(space, cfg, worker)
    common = {"objective": kt.Objective("val_accuracy", "max"), "seed": cfg.seed,
              "directory": str(Path(cfg.out) / "search"), "project_name": cfg.space, "overwrite": False}
    if cfg.tuner == "hyperband":
        return kt.Hyperband(hypermodel, max_epochs=cfg.epochs, factor=3, **common)
    if cfg.tuner == "grid":
        oracle = _grid_oracle_class()(objective=common.pop("objective"), seed=common.pop("seed"),
                                      max_trials=cfg.max_trials or space.size)
        return kt.Tuner(oracle, hypermodel, **common)
    trials = cfg.max_trials or space.size or 20
    cls = kt.RandomSearch if cfg.tuner == "random" else kt.BayesianOptimization
    return cls(hypermodel, max_trials=trials, **common)


def _rows(oracle) -> list[TrialRow]:
    rows = []
    for trial in sorted(oracle.trials.values(), key=lambda t: t.trial_id):
        names = list(trial.metrics.metrics)

        def best(name, metrics=trial.metrics, names=names):
            return metrics.get_best_value(name) if name in names else None

        worker = next((n[len(WORKER_METRIC):] for n in names if n.startswith(WORKER_METRIC)), "")
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        params, macs = best("params"), best("macs")
        rows.append(TrialRow(trial.trial_id, str(trial.status).split(".")[-1], worker, values,
                             best("val_accuracy"), int(params) if params is not None else None,
                             int(macs) if macs is not None else None,
                             round(best("seconds"), 1) if best("seconds") is not None else None))
    return rows


def _names(rows: list[TrialRow]) -> list[str]:
    return sorted({k for r in rows for k in r.hyperparameters})


def _finished(rows: list[TrialRow]) -> list[TrialRow]:
    return sorted([r for r in rows if r.val_accuracy is not None], key=lambda r: -r.val_accuracy)


def results_markdown(rows: list[TrialRow]) -> str:
    """results.md: the finished trials, best first."""
    names = _names(rows)
    table = [[rank, r.trial_id, r.worker, *(r.hyperparameters.get(n, "") for n in names), f"{r.val_accuracy:.4f}",
              f"{r.params:,}", f"{r.macs:,}", r.seconds] for rank, r in enumerate(_finished(rows), 1)]
    return markdown_table(["rank", "trial", "worker", *names, "val accuracy", "params", "MACs", "seconds"], table,
                          "rll" + "l" * len(names) + "rrrr")


def write_results(rows: list[TrialRow], out: Path) -> None:
    """results.csv, results.md and tuning.png (validation accuracy against MACs)."""
    names = _names(rows)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["trial_id", "status", "worker", *names, "val_accuracy", "params", "macs", "seconds"])
    for r in rows:
        writer.writerow([r.trial_id, r.status, r.worker, *(r.hyperparameters.get(n, "") for n in names),
                         "" if r.val_accuracy is None else f"{r.val_accuracy:.4f}", r.params, r.macs, r.seconds])
    write_text_atomic(out / "results.csv", buf.getvalue())
    write_text_atomic(out / "results.md", results_markdown(rows) + "\n")
    if done := _finished(rows):
        _plot(done, out / "tuning.png")


def _plot(rows: list[TrialRow], path: Path) -> None:
    from edge_runtime.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter([r.macs for r in rows], [100 * r.val_accuracy for r in rows], c="tab:blue", label="trials")
    ax.scatter([rows[0].macs], [100 * rows[0].val_accuracy], s=120, facecolors="none", edgecolors="red",
               label=f"best: trial {rows[0].trial_id}")
    ax.set_xscale("log")
    ax.set_xlabel("multiply-accumulates per image")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def tune(cfg: TuneConfig) -> TuneReport:
    """Run (or join, or resume) the search; the chief or a local search also trains the best into DIR/best."""
    if cfg.space not in SPACES:
        raise FmnistEdgeError(f"unknown search space {cfg.space!r}; choose one of {', '.join(SPACES)}")
    if cfg.tuner is None:
        cfg = replace(cfg, tuner=SPACES[cfg.space].tuner)
    if cfg.tuner == "grid" and SPACES[cfg.space].size is None:
        raise FmnistEdgeError(f"the {cfg.space} space is too large for a grid; use --tuner random, bayesian or "
                              "hyperband")
    role, worker = _distribution(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tuner = make_tuner(cfg, worker)
    log.info("%s search, space %s, tuner %s, results in %s", role, cfg.space, cfg.tuner, out)
    tuner.search(verbose=0)
    report = TuneReport(cfg.space, cfg.tuner, str(out), role, worker=worker, oracle=cfg.oracle)
    if role == "worker":  # the chief has the results; say what this worker did
        return report
    report.trials = _rows(tuner.oracle)
    write_results(report.trials, out)
    best_trial = tuner.oracle.get_best_trials(1)
    if best_trial:
        report.best = _train_best(best_trial[0], cfg, out)
    write_json_atomic(out / "summary.json", report.to_dict())
    return report


def _train_best(trial, cfg: TuneConfig, out: Path) -> dict:
    """Train the best configuration again into DIR/best and measure its test accuracy, once."""
    from toolkit.train import train

    tc = trial_config(cfg, trial.hyperparameters, cfg.epochs, limit=cfg.limit, data_dir=cfg.data_dir,
                      out=str(out / "best"))
    result = train(tc)
    values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
    return {"trial_id": trial.trial_id, "hyperparameters": values, "val_accuracy": trial.score,
            "test_accuracy": result.test_accuracy, "params": result.params, "macs": result.macs,
            "model": str(out / "best" / "model.keras")}


__all__ = ["SPACES", "TUNERS", "TuneConfig", "TuneReport", "tune"]
