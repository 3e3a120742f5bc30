"""Run every edge command on each model file given, in this one process (click's CliRunner, so the
interpreter and runtimes start once), and write what each did as JSON: exit code, stderr, an
exception that escaped the CLI, seconds. tests/test_fuzz.py runs it under a memory limit and reads it.

    python tests/fuzz_worker.py OUT.json IMAGE VIDEO MODEL...
"""

from __future__ import annotations

import json
import logging
import resource
import signal
import sys
import time

from click.testing import CliRunner

from toolkit.cli import cli

COMMAND_SECONDS = 60


def commands(model: str, image: str, video: str, bench: bool) -> dict[str, list[str]]:
    found = {"info": ["info", model], "predict": ["predict", "--model", model, image, "--json"],
             "evaluate": ["evaluate", model, "--limit", "20", "--json"], "verify": ["verify", model, "--json"],
             "camera": ["camera", "--model", model, "--source", video, "--headless", "--max-frames", "3", "--json"]}
    if bench:
        found["bench"] = ["bench", model, "--runs", "10", "--warmup", "1", "--json"]
    return found


class Hung(Exception):
    pass


def _alarm(signum, frame):
    raise Hung


def run(args: list[str]) -> dict:
    logging.root.handlers.clear()  # the CLI's logging writes to this invocation's stderr, not the last one's
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(COMMAND_SECONDS)
    start = time.perf_counter()
    try:
        result = CliRunner().invoke(cli, args, prog_name="fmnist-edge")
    except Hung:
        return {"args": args, "hung": True}
    finally:
        signal.alarm(0)
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    return {"args": args, "exit": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
            "escaped": None if escaped is None else f"{type(escaped).__name__}: {escaped}",
            "seconds": round(time.perf_counter() - start, 3)}


def main() -> None:
    out, image, video, *models = sys.argv[1:]
    runs = []
    for i, model in enumerate(models):
        for name, args in commands(model, image, video, bench=i % 4 == 0).items():
            runs.append({"model": model, "command": name, **run(args)})
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(out, "w") as f:
        json.dump({"runs": runs, "peak_rss_kb": max(usage)}, f)


if __name__ == "__main__":
    main()
