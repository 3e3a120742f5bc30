"""The training configuration and the recipes that fill it.

A recipe is a TOML file (toolkit/recipes/NAME.toml, or any file a user writes) whose keys are
TrainConfig's fields; `base = "NAME"` starts from another recipe and changes a few keys. The
default recipe holds every setting, so each setting's value is written in one place. A run's
configuration is its recipe, then `--set KEY=VALUE`, then the command line's own flags; every key is
checked against TrainConfig (and the tables against the augmentation settings they fill), so a
misspelt key is refused rather than ignored. TensorFlow-free: `--help` and `fmnist-edge recipes`
read the recipes without it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.core.errors import FmnistEdgeError

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
DEFAULT, FINE_TUNE = "default", "fine-tune"
"""The recipe of a run from scratch, and of one that starts from a trained model (`train --init`)."""
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"
MODEL_NAMES = {"bundled": BUNDLED_DIR / "model.keras", "bundled-teacher": BUNDLED_DIR / "teacher_int8.tflite"}
"""Model files a recipe or --init/--teacher may name: the bundled model's Keras file (where `train --init
bundled` starts) and the first bundled model (the bundled recipe's teacher)."""
INIT = "init"
"""A teacher named "init" is the model given to --init (learning without forgetting)."""


@dataclass(frozen=True)
class AugmentConfig:
    """Camera-like augmentation of 28x28 images in the tf.data pipeline (toolkit.train.augment)."""

    shift: float = 0.04
    """Largest shift, as a fraction of the image side, rounded to whole pixels (0.04: up to 1 px)."""
    affine_prob: float = 0.2
    """Share of images that are also rotated and zoomed (resampled)."""
    rotation_deg: float = 6.0
    """Largest rotation either way, in degrees."""
    zoom: float = 0.06
    """Largest relative change of scale either way."""
    flip: bool = True
    """Mirror left-right half of the time."""
    gain: float = 0.15
    """Largest relative change of pixel intensity (contrast) either way."""
    blur_prob: float = 0.1
    """Share of images replaced by a Gaussian-blurred copy (an out-of-focus camera)."""
    noise_std: float = 3.0
    """Largest standard deviation of added Gaussian noise, in 0..255 pixel units."""
    erase_prob: float = 0.0
    """Share of images with one rectangle set to background (random erasing): a part of the item
    hidden, cut off by the frame edge or missed by the preprocessing's mask."""
    erase_area: tuple[float, float] = (0.02, 0.15)
    """Smallest and largest erased area, as a fraction of the image."""


@dataclass
class TrainConfig:
    """Everything a training run is: the recipe's keys first, then what belongs to one run."""

    arch: str
    arch_params: dict
    """Hyperparameters of the architecture (toolkit.models.build_model), e.g. {"dropout": 0.5}."""
    epochs: int
    """Most epochs; early stopping usually ends the run sooner."""
    batch_size: int
    lr: float
    """Peak learning rate of Adam; it decays along a cosine to 1% over `epochs`."""
    augment: bool
    augment_config: AugmentConfig
    augment_warmup_epochs: float
    """Epochs over which augmentation strength ramps from none to full."""
    val_split: float
    patience: int
    """Epochs without a better validation loss before stopping; the best weights are kept."""
    seed: int
    photo_split: str
    """Which photos train (edge_runtime.data.photos.SCORED_AFTER says which are scored): "tune" or
    "held-out" (the other half is scored), "tune-a" or "tune-b" (choose a recipe without touching
    held-out), or "all" (a final model, or a fine-tune on every frame a user labelled)."""
    photo_exclude: tuple[str, ...]
    """Photo classes left out of training (leave-class-out: a proxy for garment types no photo shows)."""
    photo_batch: int
    """Photos added to every batch of `batch_size` Fashion-MNIST images."""
    photo_variants: int
    """With more than 1: that many frames per photo, the photo and augmented copies made at full size
    before the camera's preprocessing (toolkit.photo_augment), in place of the photo preprocessed once."""
    photo_augment_params: dict
    """Settings of the full-size photo augmentation that differ from PhotoAugmentConfig's defaults."""
    photo_augment_config: AugmentConfig
    """The 28x28 augmentation of the photos in each batch."""
    photo_balance: float
    """How the photo frames are drawn: a group of photos (one source, one photo class) in proportion to
    its size to this power (1: as the folders have them; 0: every group alike)."""
    ood_weight: float
    """Weight of the pull towards a uniform answer for photos no class fits."""
    set_focus: float
    """Share of the loss on photos accepting several classes that rewards the best accepted class
    alone (losses.set_valued_loss), so such photos get one confident label rather than a split answer."""
    temperature: float
    """Softmax temperature folded into the output layer after training (toolkit.calibrate): above 1
    the model is less sure of everything, so --min-score means what it says; no runtime change."""
    teachers: tuple[str, ...]
    """Model files (model.keras, or an exported .tflite/.onnx run by the edge runtime) whose averaged
    answers the model also learns from (knowledge distillation)."""
    distill_weight: float
    """Share of the loss that is the match to the teachers' softened answers (with `teachers`)."""
    distill_temperature: float
    """Temperature that softens both the teachers' and the model's answers for that match."""
    distill_photos: str
    """Which photos the teachers' answers are distilled on: "all", or "right" (only where a teacher's
    top class is an accepted one; elsewhere the photo's own label)."""
    recipe: str = DEFAULT
    """The recipe this configuration started from (a name, or a file)."""
    limit: int | None = None
    data_dir: str | None = None
    out: str = "runs/train"
    init: str | None = None
    """Start from this model.keras instead of fresh weights (fine-tuning; "bundled": the bundled
    model's Keras file)."""
    photos: tuple[str, ...] = ()
    """Real-photo folders; their `photo_split` joins training, the photos it leaves are scored."""

    @classmethod
    def from_recipe(cls, recipe: str | None = None, settings: dict | None = None, **flags) -> TrainConfig:
        """A run's configuration: `recipe` (a name or a file; by default fine-tune with `init`, else
        the recipe named after `arch`, else default), then `settings` (KEY or TABLE.KEY -> value, as
        --set gives them), then `flags` (the command line's own, None where not given)."""
        return resolve(recipe, settings or {}, flags)


TABLES = {"augment_config": AugmentConfig, "photo_augment_config": AugmentConfig,
          "photo_augment_params": "toolkit.photo_augment.PhotoAugmentConfig", "arch_params": None}
"""The recipe keys that are tables, and the settings class whose fields they may hold (None: any
name, checked by the architecture when the model is built)."""
RUN_KEYS = ("recipe", "limit", "data_dir", "out", "init", "photos")
"""TrainConfig fields that belong to a run (the command line), not to a recipe."""
META_KEYS = ("description", "base")


def recipe_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig) if f.name not in RUN_KEYS]


def recipe_names() -> list[str]:
    """The recipes shipped in the package, default first."""
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
    return [DEFAULT, *(n for n in names if n != DEFAULT)]


def recipe_path(name: str) -> Path:
    """A shipped recipe by name, or a TOML file by path."""
    if (RECIPES_DIR / f"{name}.toml").is_file():
        return RECIPES_DIR / f"{name}.toml"
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return path
    raise FmnistEdgeError(f"--recipe {name}: no such recipe; give one of {', '.join(recipe_names())}, "
                          "or a .toml file")


def _table_class(key: str):
    cls = TABLES[key]
    if isinstance(cls, str):
        import importlib

        module, name = cls.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
    return cls


def read_recipe(name: str, _seen: tuple[str, ...] = ()) -> dict:
    """A recipe's keys with its bases' underneath (tables merged key by key), checked."""
    path = recipe_path(name)
    if str(path) in _seen:
        raise FmnistEdgeError(f"{path}: its bases form a circle ({' -> '.join(_seen)})")
    try:
        own = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FmnistEdgeError(f"{path}: not a readable recipe ({exc}); fix the TOML") from None
    values = read_recipe(own["base"], (*_seen, str(path))) if "base" in own else {}
    values.pop("description", None)
    for key, value in own.items():
        if key in META_KEYS:
            continue
        check_key(key, path)
        if key in TABLES:
            if not isinstance(value, dict):
                raise FmnistEdgeError(f"{path}: {key} must be a table ([{key}]), not {value!r}")
            for sub in value:
                check_key(f"{key}.{sub}", path)
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    values["description"] = own.get("description", values.get("description", ""))
    return values


def check_key(key: str, where: object = "--set") -> None:
    """Refuse a key that is not a recipe setting, naming the ones there are."""
    top, _, sub = key.partition(".")
    if top not in recipe_keys():
        raise FmnistEdgeError(f"{where}: no setting {top}; the settings are {', '.join(recipe_keys())}")
    if sub and top not in TABLES:
        raise FmnistEdgeError(f"{where}: {top} is not a table; set it as {top}=VALUE")
    if top in TABLES and not sub and where == "--set":
        raise FmnistEdgeError(f"{where}: {top} is a table; set one of its keys, e.g. {top}.NAME=VALUE")
    cls = _table_class(top) if sub else None
    if cls is not None and sub not in {f.name for f in dataclasses.fields(cls)}:
        raise FmnistEdgeError(f"{where}: {top} has no setting {sub}; it has "
                              f"{', '.join(f.name for f in dataclasses.fields(cls))}")


def parse_value(key: str, text: str, like: object) -> object:
    """A --set value in the type of the value it replaces (`like`): numbers, true/false, lists as a,b."""
    low = text.strip().lower()
    if isinstance(like, bool):
        if low not in ("true", "false"):
            raise FmnistEdgeError(f"--set {key}={text}: give true or false")
        return low == "true"
    if isinstance(like, (list, tuple)):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if like and isinstance(like[0], (int, float)):
            return [parse_value(key, t, like[0]) for t in items]
        return items
    if isinstance(like, (int, float)):
        try:
            number = int(text) if isinstance(like, int) and low.lstrip("+-").isdecimal() else float(text)
        except ValueError:
            raise FmnistEdgeError(f"--set {key}={text}: give a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise FmnistEdgeError(f"--set {key}={text}: give a finite number")
        return number
    if like is None:  # an architecture parameter: whatever it reads as
        if low in ("true", "false"):
            return low == "true"
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
        raise FmnistEdgeError(f"--set {key}={text}: the value must be a number, true or false")
    return text


def _current(values: dict, key: str) -> object:
    """The value a --set replaces: the recipe's, else the settings class's default (None: untyped)."""
    top, _, sub = key.partition(".")
    if not sub:
        return values.get(top)
    if sub in values.get(top, {}):
        return values[top][sub]
    cls = _table_class(top)
    return None if cls is None else getattr(cls(), sub)


def apply_settings(values: dict, settings: dict) -> None:
    """KEY or TABLE.KEY -> value (text from --set is parsed in the type it replaces), in place."""
    for key, given in settings.items():
        check_key(key)
        value = parse_value(key, given, _current(values, key)) if isinstance(given, str) else given
        top, _, sub = key.partition(".")
        if sub:
            values[top] = {**values.get(top, {}), sub: value}
        else:
            values[top] = value


def choose_recipe(recipe: str | None, arch: str | None, init: str | None) -> str:
    if recipe is not None:
        return recipe
    if init:
        return FINE_TUNE
    if arch and (RECIPES_DIR / f"{arch}.toml").is_file():
        return arch
    return DEFAULT


def resolve(recipe: str | None, settings: dict, flags: dict) -> TrainConfig:
    """Recipe, then settings, then flags (None and () mean "not given") -> a checked TrainConfig."""
    flags = {k: v for k, v in flags.items() if v is not None and v != ()}
    name = choose_recipe(recipe, flags.get("arch"), flags.get("init"))
    values = read_recipe(name)
    values.pop("description")
    apply_settings(values, settings)
    run = {k: flags.pop(k) for k in RUN_KEYS if k in flags}
    for key, value in flags.items():
        check_key(key, "flag")
        values[key] = {**values.get(key, {}), **value} if key in TABLES else value
    missing = [k for k in recipe_keys() if k not in values]
    if missing:
        raise FmnistEdgeError(f"recipe {name}: no value for {', '.join(missing)}; start it with base = \"default\"")
    if values["distill_photos"] not in ("all", "right"):
        raise FmnistEdgeError(f"recipe {name}: distill_photos must be all or right, not {values['distill_photos']!r}")
    teachers = tuple(run.get("init") if t == INIT else t for t in values["teachers"])
    if None in teachers:
        raise FmnistEdgeError(f"recipe {name}: its teacher is the model given to --init; give --init MODEL")
    return TrainConfig(**{**values, "teachers": teachers, "photo_exclude": tuple(values["photo_exclude"]),
                          "photo_augment_params": _tuples(values["photo_augment_params"]),
                          "augment_config": AugmentConfig(**_tuples(values["augment_config"])),
                          "photo_augment_config": AugmentConfig(**_tuples(values["photo_augment_config"]))},
                       recipe=name, **{k: v for k, v in run.items() if k != "recipe"})


def _tuples(table: dict) -> dict:
    """TOML lists to the tuples the frozen settings hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}


def model_file(name: str) -> Path:
    """A model as --init, --teacher and recipes name it: "bundled", "bundled-teacher" or a path."""
    return MODEL_NAMES.get(name, Path(name))


@dataclass
class RecipeReport:
    """A recipe resolved (bases and the settings classes' defaults filled in): `fmnist-edge recipes NAME`."""

    recipe: str
    path: str
    description: str
    settings: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format_text(self) -> str:
        """TOML a user can save, change and pass to `train --recipe FILE`."""
        lines = [f"# {self.recipe} ({self.path}), resolved", f'description = "{self.description}"', ""]
        tables = {k: v for k, v in self.settings.items() if isinstance(v, dict)}
        lines += [f"{k} = {_toml(v)}" for k, v in self.settings.items() if k not in tables]
        for key, table in tables.items():
            lines += ["", f"[{key}]", *(f"{k} = {_toml(v)}" for k, v in table.items())]
        return "\n".join(lines)


@dataclass
class RecipeList:
    """The shipped recipes and what each is for: `fmnist-edge recipes`."""

    recipes: dict[str, str]

    def to_dict(self) -> dict:
        return dict(self.recipes)

    def format_text(self) -> str:
        width = max(map(len, self.recipes))
        return "\n".join(f"{name:{width}}  {text}" for name, text in self.recipes.items())


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def list_recipes() -> RecipeList:
    return RecipeList({name: read_recipe(name)["description"] for name in recipe_names()})


def describe(name: str) -> RecipeReport:
    """A recipe resolved, as `fmnist-edge recipes NAME` prints it."""
    values = read_recipe(name)
    for key, cls in TABLES.items():
        if cls is not None and key in values:
            values[key] = {**dataclasses.asdict(_table_class(key)()), **values[key]}
    description = values.pop("description")
    return RecipeReport(name, str(recipe_path(name)), description, values)


def defaults_text(key: str) -> str:
    """What the shipped recipes set `key` to, for --help: "40 (edge: 80, fine-tune: 2)"."""
    values = {name: _shown(read_recipe(name), key) for name in recipe_names() if not name.startswith("tune-")}
    base = values.pop(DEFAULT)
    others = ", ".join(f"{name}: {value}" for name, value in values.items() if value != base)
    return f"{base} ({others})" if others else str(base)


def _shown(values: dict, key: str) -> str:
    top, _, sub = key.partition(".")
    value = values.get(top, {}).get(sub, _current(values, key)) if sub else values.get(top)
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


__all__ = ["DEFAULT", "FINE_TUNE", "AugmentConfig", "TrainConfig", "describe", "model_file", "recipe_names",
           "resolve"]
