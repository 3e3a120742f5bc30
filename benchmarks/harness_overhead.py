"""Is `fmnist-edge bench` measuring the model or itself? Compare it with a bare interpreter loop.

Times, alternately in one process, (a) a bare LiteRT `set_tensor/invoke/get_tensor` loop on the
file's own input tensor and (b) `edge_runtime.tools.bench.measure` (the harness `bench` runs, including
the quantization of uint8 pixels and the dequantization of the output), each at batch 1 on one
thread, and prints the p50 of both and their ratio.

    python benchmarks/harness_overhead.py MODEL.tflite [--runs 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from edge_runtime.core.backends.litert import interpreter_module
from edge_runtime.tools.bench import measure


def bare_p50(path: str, runs: int) -> float:
    module, _, _ = interpreter_module()
    interp = module.Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = np.zeros(inp["shape"], inp["dtype"])
    set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor
    for _ in range(200):
        set_tensor(inp["index"], x)
        invoke()
        get_tensor(out["index"])
    times = np.empty(runs, np.int64)
    clock = time.perf_counter_ns
    for i in range(runs):
        t0 = clock()
        set_tensor(inp["index"], x)
        invoke()
        get_tensor(out["index"])
        times[i] = clock() - t0
    return float(np.median(times)) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bare, harness = [], []
    for _ in range(args.rounds):
        bare.append(bare_p50(args.model, args.runs))
        harness.append(measure(args.model, threads=1, batch=1, runs=args.runs, warmup=200).p50_ms)
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"{args.model}: bare loop p50 {b:.4f} ms, bench harness p50 {h:.4f} ms, ratio {h / b:.3f} "
          f"(medians of {args.rounds} rounds of {args.runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
