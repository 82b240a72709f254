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


def _splat_share(img: np.ndarray, ref: np.ndarray) -> float:
    """The share of a screenshot's pixels (every 7th) near one of the splat colours ``ref`` and
    unlike the page's plain background (the screenshot's most common colour)."""
    px = img.reshape(-1, 3)[:: 7]
    vals, counts = np.unique(px.astype(np.uint8), axis=0, return_counts=True)
    bg = vals[np.argmax(counts)].astype(np.float64)
    not_bg = np.linalg.norm(px - bg, axis=1) > 40
    near = np.sqrt(((px[:, None, :] - ref[None]) ** 2).sum(-1)).min(1) < 25
    return float((not_bg & near).mean())


def _nudge(page, canvas) -> None:
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.65)
    page.mouse.wheel(0, -60)
    time.sleep(0.5)
    page.mouse.wheel(0, 60)
    page.mouse.move(5, 5)


def _page_state(page) -> dict:
    """What a failure message says of the page: each canvas's size and opacity, the ancestors
    of the 3D canvas (the largest; viser's first is an empty 2D overlay) that are not fully
    opaque, its WebGL context's attributes (getContext returns the context it already has)."""
    return page.evaluate("""() => {
        const cs = [...document.querySelectorAll('canvas')];
        const out = {canvases: cs.map(c => [c.width, c.height, getComputedStyle(c).opacity])};
        const c3 = cs.reduce((a, c) => (!a || c.width * c.height > a.width * a.height) ? c : a, null);
        const faded = [];
        for (let el = c3; el; el = el.parentElement) {
            const o = getComputedStyle(el).opacity;
            if (o !== '1') faded.push([el.tagName, String(el.className).slice(0, 40), o]);
        }
        out.faded = faded;
        const gl = c3 && (c3.getContext('webgl2') || c3.getContext('webgl'));
        out.gl = gl ? gl.getContextAttributes() : null;
        out.dpr = window.devicePixelRatio;
        return out;
    }""")


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
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text[:160]))
            # Under a loaded CPU viser's client (software WebGL) has been seen to leave its whole
            # 3D view drawn at ~30 % over the white page for the whole wait (cause not found;
            # docs/viewer.md). So, as a user would: after 20 s hover the canvas and scroll a notch
            # in and out; after 20 s more reload the page once. Each step taken is printed, and a
            # failure says what the page looked like before the reload.
            share, img, taken, veiled = 0.0, None, [], None
            start = time.monotonic()
            while time.monotonic() < start + 70:
                time.sleep(1.0)
                img = _shot(page, canvas, tmp_path / "viewer.png")
                share = _splat_share(img, ref)
                if share > 0.15:
                    break
                if not taken and time.monotonic() > start + 20:
                    taken.append("nudge")
                    _nudge(page, canvas)
                elif taken == ["nudge"] and time.monotonic() > start + 40:
                    taken.append("reload")
                    veiled = (f"{share:.1%} before the reload; page: {_page_state(page)}; "
                              f"console: {console[-6:]}")
                    page.reload()
                    canvas = page.locator("canvas").first
                    canvas.wait_for(state="visible", timeout=30_000)
            print(f"splat colours on {share:.1%} of the canvas"
                  + (f" (after: {', '.join(taken)}; {veiled or ''})" if taken else ""))
            assert img is not None and img.std() > 10, "the canvas is blank"
            assert share > 0.15, (f"only {share:.1%} of the canvas shows splat colours (after: {taken}; "
                                  f"{veiled}; page now: {_page_state(page)}; console: {console[-6:]})")

            # Drive: switch drive mode on, hold W.
            page.get_by_text("Drive mode (W/S/A/D)").click()
            page.get_by_role("button", name="Throttle (W)").wait_for(state="visible", timeout=10_000)
            t0, step0, x0, y0, v0 = _status(page)
            assert step0 == 0 and v0 == 0.0
            pip = page.locator("img[src^='blob:']").last  # the front camera (a JPEG blob)
            before = _shot(page, pip)
            page.mouse.move(5, 5)
            # W held until the episode ends (the clip's time span runs out after a few steps),
            # however long a step takes on a busy machine (a step can still coast there: the
            # check below allows it).
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
    # From rest, straight ahead, each step at full throttle (4 m/s², the default vehicle) or
    # coasting: W is held for all of them, but on a loaded machine the page's key repeats can
    # come later than the server's hold (HOLD_SECONDS) and a step then coasts. So the speed is
    # 4 m/s² times the throttled steps' time, and the distance lies between those steps taken
    # last and taken first (exact kinematics, splatnet.sim.vehicle).
    dt = (t1 - t0) / step1
    on = round(v1 / (4.0 * dt))
    assert 1 <= on <= step1 and v1 == pytest.approx(4.0 * dt * on, abs=2e-3), (v1, dt, step1)
    travelled = float(np.hypot(x1 - x0, y1 - y0))
    late = 0.5 * 4.0 * (on * dt) ** 2  # the throttled steps last
    early = late + 4.0 * on * dt * (step1 - on) * dt  # first, then coasting at v1
    assert late - 2e-3 <= travelled <= early + 2e-3, (travelled, late, early)
    print(f"{on} of {step1} steps at full throttle")
    assert before.shape == after.shape
    assert np.abs(before - after).mean() > 0.5, "the front camera picture did not change"
