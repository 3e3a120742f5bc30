"""The `fmnist-edge` command line: wiring only.

Each command parses its options, calls one library function and prints its report. Heavy imports
(TensorFlow above all) happen inside the command that needs them, so `--help` is instant and the
edge commands never load TensorFlow.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from edge_runtime._version import __version__
from edge_runtime.errors import FmnistEdgeError


class _Group(click.Group):
    """Turns domain errors into one line on stderr and exit 1; Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FmnistEdgeError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    def list_commands(self, ctx):
        return list(self.commands)  # in the order they are defined, as the contract lists them


def _print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2))


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                                help="Directory with the four Fashion-MNIST idx(.gz) files.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fmnist-edge")
def cli() -> None:
    """Train a Fashion-MNIST CNN, export it to TFLite and ONNX, run it on a camera."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")


@cli.command()
@data_dir_option
@click.option("--download/--no-download", default=True, show_default=True,
              help="Download the dataset into the cache when it is nowhere else.")
@json_option
def data(data_dir: str | None, download: bool, as_json: bool) -> None:
    """Where the dataset is, verified; downloads it if allowed and missing."""
    from toolkit import data as datamod

    found = datamod.locate(data_dir, allow_download=download)
    report = {"directory": str(found.directory), "source": found.source, "verified": True,
              "files": {name: str(path) for name, path in found.files.items()}}
    if as_json:
        _print_json(report)
        return
    click.echo(f"Fashion-MNIST in {found.directory} ({found.source}), all four files verified by SHA-256:")
    for path in found.files.values():
        click.echo(f"  {path}")


@cli.command()
@click.option("--arch", default="seed-b", show_default=True, help="Model zoo architecture.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs (early stopping may end sooner).  [default: 40]")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Peak learning rate (cosine decay over --epochs).")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Camera-like augmentation: shifts, rotation, zoom, flips, gain, blur, noise.")
@click.option("--val-split", type=float, default=0.1, show_default=True,
              help="Share of the training set held out for validation.")
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Epochs without a better validation loss before stopping.  [default: 6]")
@click.option("--limit", type=click.IntRange(min=2), default=None, help="Train on the first N images only.")
@click.option("--seed", type=int, default=0, show_default=True)
@data_dir_option
@click.option("--out", type=click.Path(file_okay=False), default="runs/train", show_default=True)
@json_option
def train(as_json: bool, **options) -> None:
    """Train a CNN; writes model.keras, metrics.json, history.json and figures to --out."""
    from toolkit import models

    if options["arch"] not in models.ARCHITECTURES:
        raise click.BadParameter(f"choose one of {', '.join(models.ARCHITECTURES)}", param_hint="--arch")
    from toolkit.train import TrainConfig
    from toolkit.train import train as run_training

    cfg = TrainConfig(**{k: v for k, v in options.items() if v is not None})
    report = run_training(cfg)
    if as_json:
        _print_json(report.metrics())
        return
    click.echo(f"{report.arch}: test accuracy {report.test_accuracy:.4f}, loss {report.test_loss:.4f}, "
               f"{report.epochs_run} epochs (best {report.best_epoch}) in {report.train_seconds:.0f} s, "
               f"{report.params:,} parameters, {report.macs:,} MACs/image")
    click.echo(f"wrote {report.out}/model.keras and its report")


def main() -> None:
    cli(prog_name="fmnist-edge")


if __name__ == "__main__":
    main()
