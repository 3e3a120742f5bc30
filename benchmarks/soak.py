"""A long run of the camera at full speed, its memory sampled: does a Pi in a corner keep running for weeks?

Serves a looping MJPEG stream of camera-like frames (toolkit.synthetic) from this process, as fast as it
is read, and runs `fmnist-edge camera --source http://.../stream.mjpg --headless --serve ...` on it: a
live source, so the grabber thread, dropped frames and the web server with its /metrics are all in play.
Every --every seconds it records the camera's resident memory (/proc/PID/status) and its frame count
(/metrics). At the end: the samples as CSV, and a JSON summary with the memory after warm-up, at the end,
its peak and its slope (MB per hour, least squares over the samples after warm-up).

    python benchmarks/soak.py [--minutes 60] [--every 10] [--warmup 60] [--out runs/soak] [-- CAMERA OPTION ...]

Options after `--` go to the camera as they are (`-- --decode-scale auto` soaks the packet decoder).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

BOUNDARY = b"soak-frame"


def jpeg_frames(count: int = 60) -> list[bytes]:
    from edge_runtime.data import fashion_mnist as data
    from toolkit.synthetic import render_frame

    images, _ = data.load_split("test", limit=count)
    frames = []
    for i, item in enumerate(images[..., 0]):
        frame, _ = render_frame(item, (480, 640), 220 + i % 60, (320 + i % 80, 240), seed=i)
        frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return frames


def stream_server(frames: list[bytes]) -> ThreadingHTTPServer:
    class Stream(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            self.end_headers()
            i = 0
            try:
                while True:
                    jpeg = frames[i % len(frames)]
                    self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                    i += 1
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


def frames_done(metrics_url: str) -> int | None:
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    match = re.search(r"^fmnist_edge_frames_total (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the memory baseline")
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    parser.add_argument("camera_options", nargs="*", metavar="CAMERA OPTION",
                        help="after --: more options for the camera, e.g. -- --decode-scale auto")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    source = stream_server(jpeg_frames())
    port = free_port()
    cmd = [sys.executable, "-m", "toolkit.cli", "camera", "--headless", "--serve", f"127.0.0.1:{port}", "--source",
           f"http://127.0.0.1:{source.server_address[1]}/stream.mjpg"] + (["--model", args.model] if args.model else [])
    cmd += args.camera_options
    camera = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = f"http://127.0.0.1:{port}/metrics"
    samples, start = [], time.time()
    try:
        while time.time() - start < args.minutes * 60:
            time.sleep(args.every)
            if camera.poll() is not None:
                raise SystemExit(f"the camera ended early ({camera.returncode}): {camera.stderr.read()[-2000:]}")
            samples.append((round(time.time() - start, 1), round(rss_mb(camera.pid), 2), frames_done(metrics)))
            print(f"{samples[-1][0]:8.0f} s  RSS {samples[-1][1]:7.2f} MB  frames {samples[-1][2]}", flush=True)
    finally:
        camera.terminate()
        camera.wait(timeout=30)
        source.shutdown()
    with open(args.out / "soak.csv", "w", newline="") as f:
        csv.writer(f).writerows([("seconds", "rss_mb", "frames"), *samples])
    after = [(t, m) for t, m, _ in samples if t >= args.warmup]
    t, m = np.array(after).T
    summary = {"minutes": args.minutes, "samples": len(samples), "frames": samples[-1][2],
               "fps": round(samples[-1][2] / samples[-1][0], 1) if samples[-1][2] else None,
               "rss_after_warmup_mb": m[0], "rss_end_mb": m[-1], "rss_peak_mb": float(m.max()),
               "slope_mb_per_hour": round(float(np.polyfit(t / 3600, m, 1)[0]), 3), "command": " ".join(cmd[1:])}
    (args.out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
