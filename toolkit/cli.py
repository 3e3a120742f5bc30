"""The `fmnist-edge` command line: wiring only.

Each command parses its options, calls one library function and prints its report. Heavy imports
(TensorFlow above all) happen inside the command that needs them, so `--help` is instant and the
edge commands never load TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path

import click

from edge_runtime._version import __version__
from edge_runtime.core.errors import FmnistEdgeError

TRAINING_PACKAGES = {"tensorflow", "keras", "tf2onnx", "onnx", "keras_tuner", "matplotlib"}


class _Group(click.Group):
    """Turns domain errors into one line on stderr and exit 1; Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FmnistEdgeError as exc:
            raise click.ClickException(str(exc)) from None
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in TRAINING_PACKAGES:
                raise
            command = ctx.invoked_subcommand or "this command"
            raise click.ClickException(f"{command} needs the training extras: pip install 'fmnist-edge[train]'") \
                from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    def list_commands(self, ctx):
        return list(self.commands)  # in the order they are defined, as the contract lists them


class _TableChoice(click.Choice):
    """The choices of an option: the keys of a table in the library, imported only when click needs
    them (help, or parsing that option), so the tables stay where they are defined."""

    def __init__(self, module: str, table: str):
        self._table = (module, table)
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        import importlib

        module, table = self._table
        return tuple(getattr(importlib.import_module(module), table))

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ assigns; the table is the truth
        pass


class _Finite(click.FloatRange):
    """A number in a range that is a number: `nan` passes every comparison click makes, so it is refused
    here, with the other values that are not finite."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _init_model(ctx, param, value: str | None) -> str | None:
    """--init: a model file that exists, or "bundled" (train resolves it to the bundled model's Keras file)."""
    if value is not None and value != "bundled" and not Path(value).is_file():
        raise click.BadParameter(f"{value}: no such file; give a model.keras that train wrote, or bundled", ctx, param)
    return value


def _address(ctx, param, value: str | None) -> str | None:
    """HOST:PORT, checked when the command line is read (a usage error, exit 2), not when serving starts."""
    if value is None:
        return None
    from edge_runtime.web.address import parse_host_port

    try:
        parse_host_port(value, param.opts[0])
    except FmnistEdgeError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[1]) from None
    return value


def _given_options(ctx: click.Context, skip: set[str]) -> list[tuple[str, str | None]]:
    """The options given on the command line, as (option, value) pairs (None for a flag that is on)."""
    from click.core import ParameterSource

    given = []
    for param in ctx.command.params:
        if param.name in skip or ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        if getattr(param, "is_flag", False):
            given += [(param.opts[0], None)] if value else []
        else:
            given.append((param.opts[0], ",".join(map(str, value)) if isinstance(value, tuple) else str(value)))
    return given


def _emit(report, as_json: bool = False) -> None:
    """Print a report (edge_runtime.report.base.Report): one JSON document with --json, else its text."""
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format_text())


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                                help="Directory with the four Fashion-MNIST idx(.gz) files.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fmnist-edge")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show what TensorFlow, LiteRT and the converters print (same as FMNIST_EDGE_VERBOSE=1).")
def cli(verbose: bool) -> None:
    """Train a Fashion-MNIST CNN, export it to TFLite and ONNX, run it on a camera."""
    if verbose:
        import os

        os.environ["FMNIST_EDGE_VERBOSE"] = "1"  # read where native output is silenced, also in bench's workers
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    for package in ("toolkit", "converters", "edge_runtime"):  # our progress; libraries stay quiet
        logging.getLogger(package).setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("tf2onnx").setLevel(logging.INFO if verbose else logging.WARNING)


@cli.command()
@data_dir_option
@click.option("--download/--no-download", default=True, show_default=True,
              help="Download the dataset into the cache when it is nowhere else.")
@json_option
def data(data_dir: str | None, download: bool, as_json: bool) -> None:
    """Where the dataset is, verified; downloads it if allowed and missing."""
    from edge_runtime.data import fashion_mnist as datamod

    _emit(datamod.locate(data_dir, allow_download=download), as_json)


def parse_arch_params(pairs: tuple[str, ...], param_hint: str = "--arch-param") -> dict:
    """NAME=VALUE pairs to a dict; values become bool, int or float where they read as one."""
    params = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: give NAME=VALUE, e.g. dropout=0.3", param_hint=param_hint)
        low = text.lower()
        if low in ("true", "false"):
            params[name] = low == "true"
            continue
        for kind in (int, float):
            try:
                params[name] = kind(text)
                break
            except ValueError:
                continue
        else:
            raise click.BadParameter(f"{pair!r}: the value must be a number, true or false", param_hint=param_hint)
    return params


class _RecipeOption(click.Option):
    """An option whose default comes from the recipe files: its help says what each recipe sets it to,
    read from the files when help is shown (toolkit.train.config, no TensorFlow)."""

    def __init__(self, *args, key: str, **kwargs):
        self.recipe_key = key
        super().__init__(*args, default=None, **kwargs)

    def get_help_record(self, ctx):
        from toolkit.train.config import defaults_text

        record = super().get_help_record(ctx)
        return record and (record[0], f"{record[1]}  [recipe: {defaults_text(self.recipe_key)}]".strip())


def _recipe_option(*decls, key: str, **kwargs):
    return click.option(*decls, cls=_RecipeOption, key=key, **kwargs)


def _hidden(*decls, **kwargs):
    return click.option(*decls, hidden=True, **kwargs)


ALIASES = {"erase": "augment_config.erase_prob", "photo_exclude": "photo_exclude", "photo_variants": "photo_variants",
           "photo_batch": "photo_batch", "ood_weight": "ood_weight", "set_focus": "set_focus",
           "temperature": "temperature", "teachers": "teachers", "distill_weight": "distill_weight",
           "distill_temperature": "distill_temperature", "arch_params": "arch_params",
           "photo_augment_params": "photo_augment_params"}
"""Hidden train options (outside the CLI contract) and the recipe key each one sets: aliases of --set."""
OPTION_NAMES = {"teachers": "--teacher", "arch_params": "--arch-param", "photo_augment_params": "--photo-augment"}
CONTRACT_FLAGS = ("arch", "epochs", "batch_size", "lr", "augment", "val_split", "patience", "seed", "photo_split")
"""train's own flags that set a recipe key."""


def _alias_settings(options: dict, given: dict) -> dict:
    """The hidden aliases' values as recipe settings (KEY or TABLE.KEY -> value)."""
    settings = {}
    for name, key in ALIASES.items():
        value = options.pop(name)
        if value in (None, ()):
            continue
        option = OPTION_NAMES.get(name, "--" + name.replace("_", "-"))
        if key in ("arch_params", "photo_augment_params"):
            for sub, parsed in parse_arch_params(value, option).items():
                _once(given, f"{key}.{sub}", option)
                settings[f"{key}.{sub}"] = parsed
        else:
            _once(given, key, option)
            settings[key] = list(value) if isinstance(value, tuple) else value
    return settings


def _train_settings(options: dict) -> tuple[dict, dict]:
    """(settings, flags) for toolkit.train.config.resolve: --set and the hidden aliases as settings,
    the contract's flags as flags; a key given twice is refused, an unknown one is a usage error."""
    from toolkit.train.config import check_key

    settings, given = {}, {}
    for pair in options.pop("settings"):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: give KEY=VALUE, e.g. lr=0.001", param_hint="--set")
        _once(given, key.strip(), "--set")
        settings[key.strip()] = value
    settings.update(_alias_settings(options, given))
    for key in settings:
        try:
            check_key(key)
        except FmnistEdgeError as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[1], param_hint=given[key]) from None
    flags = {k: options.pop(k) for k in CONTRACT_FLAGS}
    for key, value in flags.items():
        if value is not None:
            _once(given, key, "--" + key.replace("_", "-"))
    return settings, flags


def _once(given: dict, key: str, where: str) -> None:
    if key in given:
        raise click.UsageError(f"{key} is set twice ({given[key]} and {where}); give it once")
    given[key] = where


@cli.command()
@click.option("--recipe", default=None, metavar="NAME|FILE",
              help="A training recipe: one of `fmnist-edge recipes`, or a .toml file.  [default: fine-tune with "
                   "--init, else the one named after --arch, else default]")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Change one recipe setting for this run, e.g. lr=0.001 or augment_config.erase_prob=0.5; "
                   "repeatable (`fmnist-edge recipes default` lists the settings).")
@_recipe_option("--arch", key="arch", help="Model zoo architecture.")
@_recipe_option("--epochs", key="epochs", type=click.IntRange(min=1),
                help="Most epochs (early stopping may end sooner).")
@_recipe_option("--batch-size", key="batch_size", type=click.IntRange(min=1))
@_recipe_option("--lr", key="lr", type=_Finite(min=0, min_open=True), help="Peak learning rate (cosine decay).")
@_recipe_option("--augment/--no-augment", key="augment",
                help="Camera-like augmentation: shifts, rotation, zoom, flips, gain, blur, noise.")
@_recipe_option("--val-split", key="val_split", type=float,
                help="Share of the training set held out for validation.  0 trains on all of it for exactly "
                     "--epochs (no early stopping): a final model once the recipe is chosen on a split.")
@_recipe_option("--patience", key="patience", type=click.IntRange(min=1),
                help="Epochs without a better validation loss before stopping.")
@click.option("--limit", type=click.IntRange(min=2), default=None, help="Train on the first N images only.")
@_recipe_option("--seed", key="seed", type=int)
@data_dir_option
@click.option("--out", type=click.Path(file_okay=False), default="runs/train", show_default=True)
@click.option("--photos", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A real-photo folder (labels.csv); repeatable. Its training split joins training, the photos "
                   "it leaves are scored.")
@_recipe_option("--photo-split", key="photo_split", type=_TableChoice("edge_runtime.data.photos", "SCORED_AFTER"),
                help="With --photos: the photos that train (the other half, or quarter, is scored): tune or "
                     "held-out, tune-a or tune-b (choose a recipe without touching held-out), all (a final model, "
                     "or a fine-tune on every frame you labelled).")
@click.option("--init", default=None, callback=_init_model, metavar="MODEL.keras|bundled",
              help="Fine-tune this model.keras (or the bundled model: bundled) instead of training --arch from "
                   "scratch (the fine-tune recipe unless --recipe says otherwise).")
@_hidden("--arch-param", "arch_params", multiple=True, metavar="NAME=VALUE")
@_hidden("--erase", type=_Finite(0, 1), default=None)
@_hidden("--photo-exclude", multiple=True, metavar="CLASS")
@_hidden("--photo-variants", type=click.IntRange(min=0), default=None)
@_hidden("--photo-augment", "photo_augment_params", multiple=True, metavar="NAME=VALUE")
@_hidden("--photo-batch", type=click.IntRange(min=1), default=None)
@_hidden("--ood-weight", type=_Finite(min=0), default=None)
@_hidden("--set-focus", type=_Finite(0, 1), default=None)
@_hidden("--temperature", type=_Finite(min=0, min_open=True), default=None)
@_hidden("--teacher", "teachers", multiple=True, type=click.Path(exists=True, dir_okay=False))
@_hidden("--distill-weight", type=_Finite(0, 1), default=None)
@_hidden("--distill-temperature", type=_Finite(min=0, min_open=True), default=None)
@json_option
def train(as_json: bool, **options) -> None:
    """Train a CNN with a recipe; writes model.keras, metrics.json, history.json and figures to --out."""
    if options["init"] and options["arch"] is not None:
        raise click.UsageError("--init continues the model in that file; --arch would be ignored, so drop it")
    settings, flags = _train_settings(options)
    from toolkit.train.config import resolve

    try:
        cfg = resolve(options.pop("recipe"), settings, {**flags, **options})
    except FmnistEdgeError as exc:
        raise click.UsageError(str(exc)) from None
    from toolkit import models

    if cfg.arch not in models.ARCHITECTURES:
        raise click.BadParameter(f"choose one of {', '.join(models.ARCHITECTURES)}", param_hint="--arch")
    try:
        models.build_model(cfg.arch, **cfg.arch_params)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--arch-param") from None
    from toolkit.train import train as run_training

    _emit(run_training(cfg), as_json)


@cli.command()
@click.argument("name", required=False)
@json_option
def recipes(name: str | None, as_json: bool) -> None:
    """The training recipes; with NAME (or a .toml file), that recipe resolved: every setting it trains with."""
    from toolkit.train import config

    try:
        report = config.list_recipes() if name is None else config.describe(name)
    except FmnistEdgeError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[1], param_hint="NAME") from None
    _emit(report, as_json)


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory.  [default: export/ beside MODEL]")
@click.option("--format", "fmt", type=_TableChoice("converters.export", "FORMAT_CHOICES"), default="all",
              show_default=True)
@click.option("--int8", is_flag=True, help="Also full-integer int8 (TFLite) / static QDQ int8 (ONNX).")
@click.option("--fp16", is_flag=True, help="Also float16 weights (TFLite only).")
@click.option("--dynamic", is_flag=True, help="Also dynamic-range int8 weights.")
@click.option("--micro", is_flag=True,
              help="With --int8: also C++ source for TensorFlow Lite Micro in DIR/micro (needs fmnist-edge[micro]).")
@click.option("--calib-samples", type=click.IntRange(min=1), default=500, show_default=True,
              help="Training images, across all ten classes, that calibrate int8.")
@click.option("--keep-float", "keep_float", multiple=True, metavar="LAYER",
              help="With --int8: keep this Keras layer in float (as quantization_report.json names it); repeatable.")
@click.option("--calib-photos", type=click.Path(file_okay=False), default=None,
              help="With --int8: also calibrate on this photo folder's frames (camera --collect's, or images), "
                   "and report each file's top-1 agreement with Keras on them.")
@data_dir_option
@json_option
def export(model: str, out: str | None, fmt: str, int8: bool, fp16: bool, dynamic: bool, micro: bool,
           calib_samples: int, keep_float: tuple[str, ...], calib_photos: str | None, data_dir: str | None,
           as_json: bool) -> None:
    """Export MODEL.keras to TFLite and ONNX; every file is checked against Keras (exit 1 if any fails).
    With --int8, also DIR/quantization_report.json and .md: where int8 loses, layer by layer."""
    from converters.export import plan

    if (keep_float or calib_photos) and not int8:
        raise click.UsageError(f"{'--keep-float' if keep_float else '--calib-photos'} is about int8: add --int8")
    if keep_float and micro:
        raise click.UsageError("--micro makes an all-int8 microcontroller file: drop --keep-float or --micro")
    try:
        targets = plan(fmt, int8=int8, fp16=fp16, dynamic=dynamic, micro=micro)
    except FmnistEdgeError as exc:
        raise click.UsageError(str(exc)) from None
    _run_export(model, Path(out) if out else Path(model).parent / "export", targets, calib_samples, keep_float,
                calib_photos, data_dir, as_json)


def _run_export(model: str, out_dir: Path, targets: list, calib_samples: int, keep_float: tuple[str, ...],
                calib_photos: str | None, data_dir: str | None, as_json: bool) -> None:
    import numpy as np

    from converters.export import calibration_set
    from converters.export import export as run_export
    from converters.validate import GateError
    from edge_runtime.data import fashion_mnist, photos
    from toolkit.keras_io import load_keras_model

    frames = photos.folder_frames(calib_photos) if calib_photos else None  # a bad folder: before the long work
    keras_model = load_keras_model(model)
    train_images, train_labels = fashion_mnist.load_split("train", data_dir)
    test_images, test_labels = fashion_mnist.load_split("test", data_dir)
    calibration = calibration_set(train_images, train_labels, calib_samples)
    if frames is not None:  # at most as many frames as Fashion-MNIST images, spread over the folder
        picked = np.linspace(0, len(frames) - 1, min(len(frames), calib_samples)).round().astype(int)
        calibration = np.concatenate([calibration, frames[np.unique(picked)]])
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the report
            report, error = run_export(keras_model, model, out_dir, targets, calibration, test_images,
                                       test_labels, keep_float=keep_float, photos=frames), None
    except GateError as exc:
        report, error = exc.report, exc
    _emit(report, as_json)
    if not as_json:
        click.echo(f"report: {out_dir / 'export_report.json'}")
        if report.quantization_report:
            click.echo(f"where int8 loses, layer by layer: {report.quantization_report} (and .md)")
    if error is not None:
        raise error


def _capture_size(ctx, param, value: str | None):
    if value is None:
        return None
    from edge_runtime.camera.sources import parse_size

    try:
        return "x".join(map(str, parse_size(value)))  # as text, so --systemd-unit writes it as it was given
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _roi(ctx, param, value: str | None):
    if value is None:
        return None
    try:
        x, y, w, h = (int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("give x,y,w,h in pixels, e.g. 100,50,300,300") from None
    if min(x, y) < 0 or min(w, h) < 1:
        raise click.BadParameter("x and y must be >= 0, w and h >= 1")
    return x, y, w, h


model_option = click.option("--model", type=click.Path(dir_okay=False), default=None,
                            help="A .tflite or .onnx model.  [default: the bundled int8 model]")


@cli.command()
@model_option
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--roi", callback=_roi, default=None, help="x,y,w,h: only look for the item there.")
@json_option
def predict(model: str | None, images: tuple[str, ...], roi, as_json: bool) -> None:
    """Classify image files with the camera's frame preprocessing (exit 1 if any cannot be classified)."""
    from edge_runtime.tools.predict import predict as run_predict

    report = run_predict(images, model, roi)
    for r in report.failed:
        click.echo(f"{r['image']}: {r['error']}", err=True)
    text = report.format_text()
    if as_json or text:
        _emit(report, as_json)
    if report.failed:
        raise FmnistEdgeError(report.failure_line())


@cli.command()
@model_option
@click.option("--source", default="0", show_default=True,
              help="Camera index (V4L2), video file, stream URL (rtsp://, http://) or picamera.")
@click.option("--headless", is_flag=True, help="No window.")
@json_option
@click.option("--serve", metavar="HOST:PORT", default=None, callback=_address,
              help="Serve the annotated stream and label over HTTP (HOST defaults to 127.0.0.1).")
@click.option("--record", type=click.Path(dir_okay=False), default=None, help="Write the annotated video here.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N frames.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Inference threads.")
@click.option("--roi", callback=_roi, default=None, help="x,y,w,h: only look for the item there.")
@click.option("--smooth", "smooth_frames", type=click.IntRange(min=1), default=5, show_default=True,
              help="Frames the label is averaged over.")
@click.option("--min-score", type=_Finite(0, 1), default=0.6, show_default=True,
              help="Below this averaged probability the label is 'unsure'.")
@click.option("--mqtt", metavar="HOST:PORT", default=None, callback=_address,
              help="Publish each change of the label to this MQTT broker (needs fmnist-edge[mqtt]).")
@click.option("--topic", default=None, help="With --mqtt: the topic.  [default: fmnist-edge/label]")
@click.option("--capture-size", metavar="WxH", callback=_capture_size, default=None,
              help="Ask the camera (an index or picamera) for frames of this size, e.g. 320x240: a smaller capture "
                   "costs less to decode and preprocess.")
@click.option("--max-fps", type=_Finite(min=0.5), default=None, metavar="HZ",
              help="Classify at most HZ frames a second: a camera is asked for that rate, and the frames in "
                   "between are skipped (a V4L2 camera's not even decoded); a video file is taken at HZ frames a "
                   "second of its own time. Less CPU on a small board. At least 0.5: /healthz and systemd's "
                   "watchdog expect a frame every few seconds.")
@click.option("--decode-scale", type=click.Choice(["1", "2", "4", "8", "auto"]), default="1", show_default=True,
              help="Decode an MJPEG camera, file or stream at 1/N of its frame size (libjpeg's DCT scaling), or "
                   "auto: the smallest that keeps the 128 px copy the item is searched on (a quarter of 640x480). "
                   "Cheaper decoding and preprocessing; the window, recording and browser view show the smaller "
                   "frame, boxes and --roi stay in the source's pixels. Other sources are decoded in full.")
@click.option("--reuse-still", is_flag=True,
              help="A frame showing the same scene as the last one preprocessed gets its result (a still camera: "
                   "most frames cost a comparison, not a preprocessing).")
@click.option("--collect", type=click.Path(file_okay=False), default=None,
              help="Keep frames in this folder for labelling (fmnist-edge label) and fine-tuning.")
@click.option("--collect-when", default="unsure", show_default=True,
              help="unsure: items the label was unsure of, one per item in view; all: frames with an item; every:N.")
@click.option("--collect-max", type=click.IntRange(min=1), default=500, show_default=True,
              help="The most frames the folder holds.")
@click.option("--collect-interval", type=_Finite(min=0), default=0.5, show_default=True,
              help="Seconds between kept frames, at least.")
@click.option("--systemd-unit", "unit", is_flag=True,
              help="Print a systemd unit that runs this camera command as a service, and exit.")
def camera(as_json: bool, unit: bool, **options) -> None:
    """Classify camera frames in real time: a window, --headless, --serve to a browser, --record."""
    if options["topic"] is not None and options["mqtt"] is None:
        raise click.UsageError("--topic is for --mqtt HOST:PORT; give both, or neither")
    if options["capture_size"] is not None:
        from edge_runtime.camera.sources import check_capture_size

        try:
            check_capture_size(options["source"])
        except FmnistEdgeError as exc:  # a usage error (exit 2), found before anything opens
            raise click.UsageError(str(exc)) from None
    collect_flags = {"collect_when", "collect_max", "collect_interval"}
    ctx = click.get_current_context()
    if options["collect"] is None and any(ctx.get_parameter_source(f).name != "DEFAULT" for f in collect_flags):
        raise click.UsageError("--collect-when, --collect-max and --collect-interval are for --collect DIR")
    if options["topic"] is None:
        options.pop("topic")
    if unit:
        from edge_runtime.camera.service import systemd_unit

        click.echo(systemd_unit(_given_options(click.get_current_context(), skip={"unit"})), nl=False)
        return
    from edge_runtime.camera.app import CameraOptions, run
    from edge_runtime.camera.sinks.lines import JsonLinesSink, LabelChangesSink
    from edge_runtime.camera.sources import parse_size

    sinks = [(JsonLinesSink if as_json else LabelChangesSink)(click.echo)]
    collect = {k: options.pop(k) for k in ("collect", *collect_flags)}
    if collect["collect"]:  # the field loop's collector: attached here, the camera app knows only its own outputs
        from edge_runtime.field.collect import CollectorSink

        sinks.insert(0, CollectorSink(collect["collect"], collect["collect_when"], collect["collect_max"],
                                      collect["collect_interval"], options["min_score"]))
    if options["capture_size"] is not None:
        options["capture_size"] = parse_size(options["capture_size"])
    options["decode_scale"] = int(scale) if (scale := options["decode_scale"]).isdigit() else scale
    summary = run(CameraOptions(**options), sinks)
    click.echo(json.dumps({"summary": summary.to_dict()}) if as_json else summary.format_text())


@cli.command("calibrate-stream")
@click.argument("video", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), required=True,
              help="One line per frame: a class id, a class name, or - where no class should be shown.")
@model_option
@click.option("--max-wrong-per-hour", type=_Finite(min=0), default=None,
              help="Target: at most this many label changes to a wrong class per hour (most frames labelled right "
                   "within it).  [default: 60]")
@click.option("--min-labelled", type=_Finite(0, 1), default=None,
              help="Target instead: at least this share of item frames labelled right (fewest wrong changes).")
@click.option("--roi", callback=_roi, default=None, help="x,y,w,h: only look for the item there.")
@json_option
def calibrate_stream(video: str, labels: str, model: str | None, max_wrong_per_hour: float | None,
                     min_labelled: float | None, roi, as_json: bool) -> None:
    """Choose the camera's --smooth and --min-score on a recorded, labelled stream, for a target."""
    if max_wrong_per_hour is not None and min_labelled is not None:
        raise click.UsageError("give one target: --max-wrong-per-hour or --min-labelled")
    from edge_runtime.tools.calibrate_stream import calibrate_stream as run_calibration

    _emit(run_calibration(video, labels, model, max_wrong_per_hour, min_labelled, roi), as_json)


@cli.command()
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False))
@data_dir_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate on the first N test images.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Inference threads.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Write the confusion matrices to this image file (needs matplotlib).")
@click.option("--photos", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Also score the real photos in this folder (labels.csv), through the camera's preprocessing; "
                   "repeatable. Reported per source and per Fashion-MNIST class too.")
@click.option("--photo-split", type=_TableChoice("edge_runtime.data.photos", "SPLITS"), default="held-out",
              show_default=True,
              help="Which photos --photos scores (each folder split on its own); training with --photos uses only "
                   "the tune half.")
@json_option
def evaluate(models: tuple[str, ...], data_dir: str | None, limit: int | None, threads: int | None,
             plot: str | None, photos: tuple[str, ...], photo_split: str, as_json: bool) -> None:
    """Accuracy of MODEL files (default: the bundled model) on the Fashion-MNIST test set."""
    from edge_runtime.core.classifier import bundled_model_path
    from edge_runtime.tools.evaluate import evaluate as run_evaluation
    from edge_runtime.data import fashion_mnist

    images, labels = fashion_mnist.load_split("test", data_dir, limit=limit)
    report = run_evaluation(list(models) or [bundled_model_path()], images, labels, threads, photos, photo_split)
    if plot:
        report.plot(plot)
    _emit(report, as_json)


def _thread_list(ctx, param, value: str) -> list[int]:
    try:
        threads = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter("give thread counts like 1 or 1,2,4") from None
    if not threads or min(threads) < 1:
        raise click.BadParameter("give thread counts like 1 or 1,2,4")
    return threads


@cli.command()
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--threads", default="1", show_default=True, callback=_thread_list,
              help="Thread counts to measure, comma-separated (1,2,4).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--runs", type=click.IntRange(min=10), default=500, show_default=True, help="Timed runs.")
@click.option("--warmup", type=click.IntRange(min=0), default=50, show_default=True, help="Untimed runs first.")
@json_option
@click.option("--markdown", is_flag=True, help="Print a Markdown table.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the report to FILE instead of stdout (.json or .md pick the format).")
def bench(models: tuple[str, ...], threads: list[int], batch: int, runs: int, warmup: int, as_json: bool,
          markdown: bool, out: str | None) -> None:
    """Size, load time, latency percentiles, throughput and peak memory of MODEL files."""
    if as_json and markdown:
        raise click.UsageError("--json and --markdown are exclusive")
    from edge_runtime.core.classifier import BUNDLED, bundled_model_path
    from edge_runtime.core.files import check_writable, write_text_atomic
    from edge_runtime.tools import bench as benchmod

    paths = list(models) or [str(bundled_model_path("tflite")), str(BUNDLED["onnx"])]
    for path in paths:
        if not Path(path).is_file():
            raise FmnistEdgeError(f"{path}: no such model file")
    if out:
        check_writable(out)  # before the run, not after it
    report = benchmod.run(paths, threads, batch=batch, runs=runs, warmup=warmup)
    from edge_runtime.report.base import render

    suffix = Path(out).suffix.lower() if out else ""
    fmt = "json" if as_json or (suffix == ".json" and not markdown) else \
        "markdown" if markdown or suffix == ".md" else "text"
    text = render(report, fmt)
    if out:
        write_text_atomic(out, text + "\n")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text)
    if report.device.get("throttled"):
        click.echo("warning: the board throttled during the run; its numbers are not its best", err=True)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False), required=False)
@json_option
def info(model: str | None, as_json: bool) -> None:
    """MODEL's tensors, quantization, operators and embedded metadata (default: the bundled model)."""
    from edge_runtime.core.classifier import bundled_model_path
    from edge_runtime.tools.info import describe

    _emit(describe(model or bundled_model_path()), as_json)


@cli.command()
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Inference threads.")
@json_option
def verify(models: tuple[str, ...], threads: int | None, as_json: bool) -> None:
    """Check that this device computes what the exporter computed for MODEL files (default: the bundled
    models), with the reference inputs and the checksum each file carries; exit 1 if any differs."""
    from edge_runtime.core.classifier import BUNDLED
    from edge_runtime.tools.verify import verify as run_verify

    report = run_verify(list(models) or [BUNDLED["tflite"], BUNDLED["onnx"]], threads)
    _emit(report, as_json)
    if not report.passed:
        raise FmnistEdgeError(report.failure_line())


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--serve", metavar="HOST:PORT", default="127.0.0.1:8081", show_default=True, callback=_address,
              help="Where the page listens (0.0.0.0:PORT to label from another machine).")
def label(folder: str, serve: str) -> None:
    """A labelling page for FOLDER's collected frames (camera --collect); labels go to FOLDER/labels.csv."""
    from edge_runtime.field.label import LabelServer

    server = LabelServer(folder, serve)
    left = sum(row["photo_class"] == "unlabelled" for row in server.book.rows)
    click.echo(f"labelling {len(server.book.rows)} frames ({left} to go) in {folder}: open "
               f"http://{server.host}:{server.port}/ (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # how the page is closed: not an error
        pass
    finally:
        server.close()
    left = sum(row["photo_class"] == "unlabelled" for row in server.book.rows)
    click.echo(f"{len(server.book.rows) - left} of {len(server.book.rows)} frames labelled in {folder}", err=True)


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--model", type=click.Path(dir_okay=False), default=None,
              help="The ONNX model to adapt.  [default: the bundled int8 ONNX model]")
@click.option("--new-class", "new_classes", multiple=True, metavar="NAME",
              help="A photo class of FOLDER to teach as a class of its own, beyond the ten; repeatable.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="The adapted model (.onnx) to write.")
@data_dir_option
@json_option
def adapt(folder: str, model: str | None, new_classes: tuple[str, ...], out: str, data_dir: str | None,
          as_json: bool) -> None:
    """Teach the model FOLDER's labelled frames on this device, no TensorFlow: writes a new model file."""
    from edge_runtime.field.adapt import adapt as run_adapt

    _emit(run_adapt(folder, out, model, new_classes, data_dir), as_json)


@cli.command()
@click.option("--space", type=_TableChoice("toolkit.tune", "SPACES"), default="seed-004", show_default=True,
              help="seed-004: the seeds' grid on seed-b; edge: the edge architecture family.")
@click.option("--tuner", type=_TableChoice("toolkit.tune", "TUNERS"), default=None,
              help="[default: grid for seed-004, random for edge]")
@click.option("--max-trials", type=click.IntRange(min=1), default=None,
              help="Trials to run (grid, random, bayesian).  [default: the whole seed-004 grid (27), else 20]")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Epochs per trial (hyperband: the most any trial gets).")
@click.option("--limit", type=click.IntRange(min=10), default=None, help="Use the first N training images.")
@click.option("--out", type=click.Path(file_okay=False), default="runs/tune", show_default=True,
              help="Results and the best model; an interrupted search resumes from here.")
@click.option("--oracle", metavar="HOST:PORT", default=None, help="The chief's address, for a distributed search.")
@click.option("--role", type=click.Choice(["chief", "worker"]), default=None)
@click.option("--worker-id", default=None, help="A name unique among the workers of one search.")
@data_dir_option
@json_option
def tune(as_json: bool, **options) -> None:
    """Search hyperparameters (Keras Tuner); writes results.csv, results.md, tuning.png and best/ to --out."""
    if options["max_trials"] and options["tuner"] == "hyperband":
        raise click.UsageError("hyperband derives its trials from --epochs; drop --max-trials")
    if (options["oracle"] is None) != (options["role"] is None):
        raise click.UsageError("a distributed search needs both --oracle HOST:PORT and --role chief|worker")
    if options["role"] == "worker" and not options["worker_id"]:
        raise click.UsageError("each worker needs --worker-id NAME, unique in the search")
    if options["role"] == "chief" and options["worker_id"]:
        raise click.UsageError("the chief is always called 'chief'; drop --worker-id")
    from toolkit.tune import TuneConfig
    from toolkit.tune import tune as run_tune

    _emit(run_tune(TuneConfig(**options)), as_json)


def main() -> None:
    from edge_runtime.core.image_size import opencv_limit

    opencv_limit()  # before any command loads OpenCV: its own bound, for the formats whose header is not read
    cli(prog_name="fmnist-edge")


if __name__ == "__main__":
    main()
