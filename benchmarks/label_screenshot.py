"""The docs' picture of the labelling page: frames collected by the camera, two labelled, in chromium.

    python benchmarks/label_screenshot.py [--out docs/figures/label_page.png]

Makes a video of eight Fashion-MNIST test items on camera-like backgrounds (toolkit.synthetic),
runs `fmnist-edge camera --collect` on it (a --min-score no answer reaches, so every item is kept),
serves the folder with `fmnist-edge label --serve`, labels two frames in Debian's chromium through
Selenium and Debian's chromium-driver (a click, then a key), and saves the window.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cli(*args: str, wait: bool = True):
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    if wait and proc.wait() != 0:
        raise SystemExit(f"fmnist-edge {' '.join(args)} exited {proc.returncode}: {proc.stderr.read()}")
    return proc


def served_at(proc: subprocess.Popen) -> str:
    for line in proc.stderr:
        if match := re.search(r"http://127\.0\.0\.1:\d+/", line):
            return match.group(0)
    raise SystemExit("label --serve did not start")


def browser(profile: Path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                 f"--user-data-dir={profile}", "--window-size=1100,760"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                            options=options)


def main(argv: list[str] | None = None) -> int:
    from selenium.webdriver.common.by import By

    from edge_runtime.data.fashion_mnist import load_split
    from toolkit.synthetic import write_video

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "label_page.png"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="label-shot-"))
    images, _ = load_split("test", None, limit=40)
    write_video(work / "items.avi", images[[0, 1, 2, 4, 9, 11, 19, 23], ..., 0], frames_per_item=5, size=(240, 320),
                seed=9)
    cli("camera", "--source", str(work / "items.avi"), "--headless", "--collect", str(work / "frames"),
        "--min-score", "0.9999", "--collect-interval", "0")
    server = cli("label", str(work / "frames"), "--serve", "127.0.0.1:0", wait=False)
    driver = browser(work / "profile")
    try:
        driver.get(served_at(server))
        deadline = time.time() + 20
        while len(driver.find_elements(By.CSS_SELECTOR, ".frame")) < 8 and time.time() < deadline:
            time.sleep(0.1)
        driver.find_element(By.ID, "class-9").click()  # the first frame: Ankle boot
        time.sleep(0.5)
        driver.find_element(By.TAG_NAME, "body").send_keys("2")  # the second: Pullover, by key
        time.sleep(0.5)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(args.out)
    finally:
        driver.quit()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
