"""`splatnet view` in a real browser: headless Debian Chromium (driven by Playwright, which
downloads nothing: it is pointed at /usr/bin/chromium) opens the page, the canvas shows the
scene's splat colours, and holding W drives the ego through DrivingEnv."""

from __future__ import annotations

import io
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("viser")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data" / "sample_clip"
CLI = [sys.executable, "-m", "splatnet"]
STATUS = re.compile(r"ego: t=(\S+) step=(\d+) x=(\S+) y=(\S+) speed=(\S+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("view") / "sample.scene"
    subprocess.run([*CLI, "reconstruct", str(SAMPLE), "-o", str(out), "--size", "64x112", "--quiet"],
                   check=True, cwd=REPO, timeout=120)
    return out


@pytest.fixture(scope="module")
def server(scene_file):
    port = _free_port()
    proc = subprocess.Popen([*CLI, "view", str(scene_file), "--clip", str(SAMPLE), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "splatnet view: serving" in line or proc.poll() is not None:
                break
        assert f"http://127.0.0.1:{port}" in line, f"viewer did not start: {line!r}"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _splat_colours(scene_file: Path) -> np.ndarray:
    """The background splats' RGB (SH DC · C0 + 0.5), 0-255, read with safetensors itself."""
    from safetensors.numpy import load_file

    t = load_file(str(scene_file))
    key = next(k for k in t if k.startswith("background") and k.endswith("sh"))
    dc = t[key][:, 0, :].astype(np.float64)
    return np.clip(dc * 0.28209479177387814 + 0.5, 0, 1) * 255


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64)


def _shot(page, locator, save: Path | None = None) -> np.ndarray:
    """A screenshot of ``locator``'s box (the canvas redraws all the time: an element screenshot
    would wait for it to be still), kept as ``save`` when given."""
    data = page.screenshot(clip=locator.bounding_box())
    if save is not None:
        save.write_bytes(data)
    return _png(data)


def _status(page) -> tuple[float, int, float, float, float]:
    text = page.locator("code", has_text="ego: t=").first.inner_text()
    m = STATUS.search(text)
    assert m, text
    return float(m[1]), int(m[2]), float(m[3]), float(m[4]), float(m[5])


def test_view_and_drive_in_chromium(server, scene_file, tmp_path):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                                           "--ignore-gpu-blocklist", "--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 720, "height": 480})
            page.goto(server)
            canvas = page.locator("canvas").first
            canvas.wait_for(state="visible", timeout=30_000)

            # The splats' colours: a screenshot's pixels near a splat colour and unlike the
            # page's plain background (its most common colour) make up a good part of the canvas.
            ref = _splat_colours(scene_file)
            ref = ref[np.random.default_rng(0).choice(len(ref), 2000, replace=False)]
            share = 0.0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(1.0)
                img = _shot(page, canvas, tmp_path / "viewer.png")
                px = img.reshape(-1, 3)[:: 7]
                vals, counts = np.unique(px.astype(np.uint8), axis=0, return_counts=True)
                bg = vals[np.argmax(counts)].astype(np.float64)
                not_bg = np.linalg.norm(px - bg, axis=1) > 40
                near = np.sqrt(((px[:, None, :] - ref[None]) ** 2).sum(-1)).min(1) < 25
                share = float((not_bg & near).mean())
                if share > 0.15:
                    break
            print(f"splat colours on {share:.1%} of the canvas")
            assert img.std() > 10, "the canvas is blank"
            assert share > 0.15, f"only {share:.1%} of the canvas shows splat colours"

            # Drive: switch drive mode on, hold W for a second.
            page.get_by_text("Drive mode (W/S/A/D)").click()
            page.get_by_role("button", name="Throttle (W)").wait_for(state="visible", timeout=10_000)
            t0, step0, x0, y0, v0 = _status(page)
            assert step0 == 0 and v0 == 0.0
            pip = page.locator("img[src^='blob:']").last  # the front camera (a JPEG blob)
            before = _shot(page, pip)
            page.mouse.move(5, 5)
            # W held until the episode ends (the clip's time span runs out after a few steps),
            # so every step is taken at full throttle however long a step takes on a busy
            # machine (a fixed hold let a slow first step leave the next one coasting).
            page.keyboard.down("w")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not page.get_by_text("press Reset").count():
                time.sleep(0.2)
            page.keyboard.up("w")
            t1, step1, x1, y1, v1 = _status(page)
            after = _shot(page, pip)
        finally:
            browser.close()
    assert step1 >= 1 and t1 > t0
    # From rest at full throttle (4 m/s², the default vehicle) for the steps taken, straight ahead.
    travelled = float(np.hypot(x1 - x0, y1 - y0))
    assert travelled == pytest.approx(0.5 * 4.0 * (t1 - t0) ** 2, abs=2e-3)
    assert v1 == pytest.approx(4.0 * (t1 - t0), abs=2e-3)
    assert before.shape == after.shape
    assert np.abs(before - after).mean() > 0.5, "the front camera picture did not change"
