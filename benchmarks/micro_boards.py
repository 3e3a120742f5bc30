"""Which int8 models fit which microcontroller boards, from each file's measured flash and arena.

    python benchmarks/micro_boards.py NAME=MODEL_int8.tflite [NAME=...] [--json]

For every file: its flash (the flatbuffer a board holds, what `export --micro` puts in
model_data.cc) and its tensor arena (measured with TFLM's interpreter, the smallest that allocates
and runs the model, plus the example's 10% margin: `fmnist-edge info`). A board fits a model when

    flash of the model + FIRMWARE_FLASH <= the board's flash, and
    arena + FIRMWARE_RAM <= the board's RAM.

FIRMWARE_FLASH and FIRMWARE_RAM are budgets, not measurements: this machine cannot build TFLM for a
board. TFLM's documentation puts its core runtime at 16 KB on a Cortex-M3; its reference kernels
for the five operators these models use, a board's start-up code, a serial driver and the
application come on top, so 200 KB of flash and 64 KB of RAM (stack, frame buffer, globals) are
left for them. The boards' flash and RAM are their makers' specifications.
Needs `fmnist-edge[micro]` (tflite-micro) for the arena.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_runtime.core import micro  # noqa: E402

KB = 1024
FIRMWARE_FLASH = 200 * KB
FIRMWARE_RAM = 64 * KB

BOARDS = [  # name, flash bytes, RAM bytes (the makers' specifications)
    ("Arduino Nano 33 BLE Sense (nRF52840)", 1024 * KB, 256 * KB),
    ("Raspberry Pi Pico (RP2040)", 2048 * KB, 264 * KB),
    ("Raspberry Pi Pico 2 (RP2350)", 4096 * KB, 520 * KB),
    ("ESP32-S3-DevKitC-1-N8 (ESP32-S3: 320 KB of its 512 KB SRAM left to the app)", 8192 * KB, 320 * KB),
    ("STM32F746G-DISCO (Cortex-M7)", 1024 * KB, 320 * KB),
    ("WeAct STM32F411 \"Black Pill\" (Cortex-M4)", 512 * KB, 128 * KB),
    ("Arduino Uno R4 (RA4M1, Cortex-M4)", 256 * KB, 32 * KB),
]


def verdict(model: dict, flash: int, ram: int) -> str:
    short = [what for what, need, have in (("flash", model["flash_bytes"] + FIRMWARE_FLASH, flash),
                                           ("RAM", model["arena_bytes"] + FIRMWARE_RAM, ram)) if need > have]
    return "fits" if not short else "no: " + " and ".join(short)


def table(models: dict[str, dict]) -> str:
    names = list(models)
    lines = ["| board (flash / RAM) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines.append("| model flash / arena | " + " | ".join(
        f"{m['flash_bytes'] / KB:,.0f} KB / {m['arena_bytes'] / KB:,.1f} KB" for m in models.values()) + " |")
    for board, flash, ram in BOARDS:
        lines.append(f"| {board}: {flash // KB:,} KB / {ram // KB} KB | "
                     + " | ".join(verdict(models[n], flash, ram) for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL_int8.tflite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    pairs = [spec.partition("=") for spec in args.models]
    if any(not sep or not name for name, sep, _ in pairs):
        parser.error("give each model as NAME=PATH, e.g. edge=runs/zoo/edge/export/model_int8.tflite")
    models = {name: micro.footprint(micro.read_int8(path)) for name, _, path in pairs}
    print(json.dumps({"firmware_flash": FIRMWARE_FLASH, "firmware_ram": FIRMWARE_RAM, "models": models,
                      "boards": [{"board": b, "flash": f, "ram": r, **{n: verdict(m, f, r) for n, m in models.items()}}
                                 for b, f, r in BOARDS]}, indent=2) if args.json else table(models))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
