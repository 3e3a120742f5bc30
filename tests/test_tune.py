"""tune: the seeds' grid, results files, resuming, other tuners, and a chief with two workers on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import error_line, run_cli, run_cli_json

from toolkit import models
from toolkit.train import TrainConfig

GRID = {"lr": {0.001, 0.0001, 1e-05}, "batch_size": {32, 64, 128}, "dropout": {0.1, 0.3, 0.5}}
QUICK = ["--epochs", "1", "--limit", "300"]


def read_results(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def local_search(tmp_path_factory, fmnist_dir):
    out = tmp_path_factory.mktemp("tune")
    report = run_cli_json("tune", "--space", "seed-004", "--max-trials", "3", *QUICK, "--out", str(out),
                          "--data-dir", str(fmnist_dir))
    return out, report


def test_seed_004_trials_come_from_the_seeds_grid(local_search):
    out, report = local_search
    rows = read_results(out)
    assert report["tuner"] == "grid"  # seed-004's own tuner: every combination once
    assert len(rows) == 3 and len({r["trial_id"] for r in rows}) == 3
    assert len({(r["lr"], r["batch_size"], r["dropout"]) for r in rows}) == 3
    for row in rows:
        assert row["status"] == "COMPLETED" and row["worker"] == "local"
        assert float(row["lr"]) in GRID["lr"] and int(row["batch_size"]) in GRID["batch_size"]
        assert float(row["dropout"]) in GRID["dropout"]
        assert 0.0 < float(row["val_accuracy"]) <= 1.0
        assert int(row["params"]) == 423_338 and int(row["macs"]) == 4_468_224  # seed-b, whatever the dropout
        assert float(row["seconds"]) > 0
    assert len(report["trials"]) == 3


def test_results_files_and_best_model(local_search):
    out, report = local_search
    md = (out / "results.md").read_text()
    assert md.startswith("| rank | trial | worker |") and md.count("\n") == 2 + 3
    assert (out / "tuning.png").stat().st_size > 0
    best = report["best"]
    rows = read_results(out)
    assert best["val_accuracy"] == pytest.approx(max(float(r["val_accuracy"]) for r in rows), abs=1e-4)
    assert 0.0 < best["test_accuracy"] <= 1.0  # measured once, on the retrained best
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    assert metrics["test_accuracy"] == best["test_accuracy"] and metrics["arch"] == "seed-b"
    assert metrics["config"]["arch_params"] == {"dropout": best["hyperparameters"]["dropout"]}
    assert (out / "best" / "model.keras").is_file()


def test_an_interrupted_search_resumes(local_search, tmp_path, fmnist_dir):
    out, _ = local_search
    before = {r["trial_id"]: r["val_accuracy"] for r in read_results(out)}
    run_cli("tune", "--space", "seed-004", "--max-trials", "5", *QUICK, "--out", str(out), "--data-dir",
            str(fmnist_dir))
    after = {r["trial_id"]: r["val_accuracy"] for r in read_results(out)}
    assert len(after) == 5
    assert {k: after[k] for k in before} == before  # the first three were kept, not run again


@pytest.mark.parametrize("tuner, extra", [("bayesian", ["--max-trials", "2"]), ("hyperband", ["--epochs", "2"])])
def test_other_tuners(tuner, extra, tmp_path, fmnist_dir):
    args = ["tune", "--space", "seed-004", "--tuner", tuner, "--limit", "300", *extra, "--out", str(tmp_path),
            "--data-dir", str(fmnist_dir)]
    if tuner == "bayesian":
        args += ["--epochs", "1"]
    report = run_cli_json(*args)
    rows = read_results(tmp_path)
    assert rows and all(r["status"] == "COMPLETED" for r in rows)
    assert report["best"]["test_accuracy"] > 0


def test_edge_space_builds_the_edge_family(tmp_path, fmnist_dir):
    report = run_cli_json("tune", "--space", "edge", "--max-trials", "2", *QUICK, "--out", str(tmp_path),
                          "--data-dir", str(fmnist_dir))
    for row in read_results(tmp_path):  # each trial's model is the family member its hyperparameters name
        params = {name: row[name] in ("1", "True") if isinstance(choices[0], bool) else type(choices[0])(
                  float(row[name])) for name, choices in models.EDGE_SPACE.items()}  # Keras Tuner stores bools as 0/1
        model = models.build_model("edge", **params)
        assert (int(row["params"]), int(row["macs"])) == (model.count_params(), models.count_macs(model))
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert metrics["arch"] == "edge"
    edge = TrainConfig.from_recipe("edge")
    assert metrics["config"]["augment_config"]["erase_prob"] == edge.augment_config.erase_prob  # edge's recipe
    assert report["best"]["test_accuracy"] > 0


@pytest.mark.parametrize("args, message", [
    (["--role", "chief"], "needs both --oracle HOST:PORT and --role"),
    (["--oracle", "127.0.0.1:9"], "needs both --oracle HOST:PORT and --role"),
    (["--oracle", "127.0.0.1:9", "--role", "worker"], "each worker needs --worker-id"),
    (["--tuner", "hyperband", "--max-trials", "3"], "drop --max-trials"),
])
def test_conflicting_flags_refused(args, message):
    proc = run_cli("tune", *args, check=False)
    assert proc.returncode == 2 and message in proc.stderr


def test_grid_refused_for_the_edge_space():
    proc = run_cli("tune", "--space", "edge", "--tuner", "grid", check=False)
    assert error_line(proc).startswith("Error: the edge space is too large for a grid; use --tuner random")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers(tmp_path, fmnist_dir):
    """Keras Tuner's own chief/worker protocol on 127.0.0.1, as it runs across machines."""
    oracle = f"127.0.0.1:{free_port()}"
    common = ["tune", "--space", "seed-004", "--max-trials", "6", *QUICK, "--oracle", oracle,
              "--data-dir", str(fmnist_dir)]

    def start(*args):
        return subprocess.Popen([sys.executable, "-m", "toolkit.cli", *common, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    chief = start("--role", "chief", "--out", str(tmp_path / "chief"), "--json")
    workers = [start("--role", "worker", "--worker-id", name, "--out", str(tmp_path / name))
               for name in ("w1", "w2")]
    for proc in workers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    out, err = chief.communicate(timeout=600)
    assert chief.returncode == 0, err[-2000:]
    report = json.loads(out)
    rows = read_results(tmp_path / "chief")
    assert len(rows) == 6 and len({r["trial_id"] for r in rows}) == 6  # every trial ran once
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert {r["worker"] for r in rows} == {"w1", "w2"}  # results came back from both workers
    configs = {(r["lr"], r["batch_size"], r["dropout"]) for r in rows}
    assert len(configs) == 6  # no configuration was handed out twice
    assert report["role"] == "chief" and report["best"]["test_accuracy"] > 0
