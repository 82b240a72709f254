"""The viewer's drive-mode round trip: a key pressed in the browser → the new front-camera picture
shown in the page, measured in headless Debian Chromium (/usr/bin/chromium, driven by Playwright).

    python benchmarks/viewer_latency.py [--scene NAME.scene] [--presses 20] [--size 128x224]
        [--out benchmarks/results/viewer_latency.json]

The scene defaults to the bundled sample clip reconstructed at 128x224 by the shipped model
(``splatnet reconstruct examples/data/sample_clip -o sample.scene --size 128x224``, in a temporary
folder), served by ``splatnet view sample.scene --clip examples/data/sample_clip``, run in a
child process with timing probes added (below). Each trial: *Reset* (the ego parked at the log's
first pose, the clock stopped), wait for the page to settle, then press W, A or D in turn (key
down, 0.15 s, key up). The clock starts at that key, so its first ``DrivingEnv.step`` renders the
picture the key asked for; **the round trip** is the time from the ``keydown`` event in the page
to the ``load`` event of the picture-in-picture ``<img>`` holding that step's picture (decoded,
ready to draw), both taken in the page with ``performance.now()``. Median and p90 over
``--presses`` trials after two warm-up trials.

The split. The child process logs, on the same clock (``time.time()``; the page's
``performance.timeOrigin + performance.now()`` is the same wall clock, on the same machine):
when the key's button click reached the server (``Viewer._press``), when the drive loop's step
began and ended (``DrivingEnv.step``, with its own ``step_seconds`` split into dynamics and
observation), how long the JPEG encoding took (viser's ``_encode_image_binary``) and when
``Viewer._show`` (picture, state line, ego, actors, LiDAR, slider) returned. Hence:

- *key → server*: the page's key handler clicks the button, viser sends the click (websocket);
- *wait for the loop*: from the click's arrival to the step's start (the drive loop's poll);
- *step*: ``DrivingEnv.step`` (dynamics + observation: composition, rasterisation, sky);
- *show*: from the step's end to the picture's flush inside ``Viewer._show`` (the JPEG encoding;
  without a flush, as before this benchmark's commit, to ``_show``'s return); *show_total*: all
  of ``_show`` (the scene-graph updates too);
- *server → picture*: from there to the ``<img>``'s ``load`` (viser's send window without a
  flush, the websocket, viser's worker, its message queue, React, the JPEG decode).

``--hide-splats`` hides the splats in the browser's 3D view (the picture path is unchanged).

Prints a Markdown table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "sample_clip"
CHROMIUM = "/usr/bin/chromium"
KEYS = "wad"

# Installed in the page before its own scripts: key-down times, the arrival of each batch of
# server messages from viser's websocket worker, and for each picture-in-picture <img> source (a
# blob: URL per picture) when it was set and when it finished loading, with the state line shown
# at that moment (it carries the step number). Times are wall-clock ms.
_PAGE_PROBE = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const log = window.__latency = {keys: [], srcs: {}, loads: {}, lastBatch: 0};
  const NativeWorker = window.Worker;
  window.Worker = function (...args) {
    const w = new NativeWorker(...args);
    w.addEventListener('message', (e) => {
      if (e.data && e.data.type === 'message_batch') log.lastBatch = now();
    });
    return w;
  };
  window.Worker.prototype = NativeWorker.prototype;
  window.addEventListener('keydown', (e) => {
    if (!e.repeat) log.keys.push([now(), (e.key || '').toLowerCase()]);
  }, true);
  const status = () => {
    const c = [...document.querySelectorAll('code')].find((x) => x.textContent.includes('ego: t='));
    return c ? c.textContent : '';
  };
  const seen = (img) => {
    const src = img.getAttribute('src') || '';
    if (!src.startsWith('blob:') || src in log.srcs) return;
    log.srcs[src] = [now(), status()];
    if (img.complete && img.naturalWidth) { log.loads[src] = now(); }
  };
  document.addEventListener('load', (e) => {
    const t = e.target;
    if (t.tagName === 'IMG' && (t.src || '').startsWith('blob:') && !(t.src in log.loads)) {
      log.loads[t.src] = now();
    }
  }, true);
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes' && r.target.tagName === 'IMG') seen(r.target);
      for (const n of r.addedNodes || []) {
        if (n.tagName === 'IMG') seen(n);
        else if (n.querySelectorAll) n.querySelectorAll('img').forEach(seen);
      }
    }
  }).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
})();
"""


# ---------------------------------------------------------------------------- the served side
def serve(log_path: str, view_args: list[str], hide_splats: bool = False) -> int:
    """``splatnet view VIEW_ARGS`` with timing probes that append JSON lines to ``log_path``;
    with ``hide_splats``, the 3D view's splats are hidden (the rest of the page is as served)."""
    import viser
    import viser._gui_handles as gui_handles

    from splatnet.cli import main as cli_main
    from splatnet.sim import DrivingEnv
    from splatnet.viewer import server

    out = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    def log(**kw) -> None:
        out.write(json.dumps(kw) + "\n")

    press, step, show = server.Viewer._press, DrivingEnv.step, server.Viewer._show
    encode = gui_handles._encode_image_binary

    def timed_press(self, key):
        log(event="press", key=key, t=time.time())
        return press(self, key)

    def timed_step(self, action):
        t0 = time.time()
        result = step(self, action)
        log(event="step", k=int(result[4]["step"]), t0=t0, t1=time.time(), **self.step_seconds)
        return result

    def timed_show(self, obs, info, note):
        t0 = time.time()
        result = show(self, obs, info, note)
        log(event="show", k=int(info["step"]), t0=t0, t1=time.time())
        return result

    def timed_encode(*a, **kw):
        t0 = time.perf_counter()
        result = encode(*a, **kw)
        log(event="encode", s=time.perf_counter() - t0, bytes=len(result[1]))
        return result

    flush = viser.ViserServer.flush

    def timed_flush(self):
        result = flush(self)
        log(event="flush", t=time.time())
        return result

    server.Viewer._press, DrivingEnv.step, server.Viewer._show = timed_press, timed_step, timed_show
    gui_handles._encode_image_binary = timed_encode
    viser.ViserServer.flush = timed_flush
    if hide_splats:
        add_splats = viser.SceneApi.add_gaussian_splats

        def hidden_splats(self, *a, **kw):
            return add_splats(self, *a, **{**kw, "visible": False})

        viser.SceneApi.add_gaussian_splats = hidden_splats
    return cli_main(["view", *view_args])


# ---------------------------------------------------------------------------- the browser side
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quantiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))]
    return {"median": statistics.median(xs), "p90": p90, "min": xs[0], "max": xs[-1]}


def _step_of(status: str) -> int | None:
    import re

    m = re.search(r"step=(\d+)", status)
    return int(m[1]) if m else None


def _settle(page, quiet: float = 0.5, timeout: float = 60.0) -> None:
    """Wait until the page shows step 0, no server message came for ``quiet`` s and a frame was
    drawn since the last one (viser applies scene messages in its render loop: the queue is
    then empty, and the next picture will not wait behind them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.locator("code", has_text="ego: t=").first.inner_text()
        quiet_ms = page.evaluate(
            "new Promise((done) => requestAnimationFrame(() => "
            "done(performance.timeOrigin + performance.now() - window.__latency.lastBatch)))")
        if _step_of(text) == 0 and quiet_ms > 1e3 * quiet:
            return
        time.sleep(0.2)
    raise RuntimeError("the page did not settle after Reset")


def measure(url: str, server_log: Path, presses: int, warmup: int, episode_wait: float) -> list[dict]:
    from playwright.sync_api import sync_playwright

    trials = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                                           "--ignore-gpu-blocklist", "--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.add_init_script(_PAGE_PROBE)
            page.goto(url)
            page.locator("canvas").first.wait_for(state="visible", timeout=60_000)
            page.get_by_text("Drive mode (W/S/A/D)").click()
            page.get_by_role("button", name="Throttle (W)").wait_for(state="visible", timeout=30_000)
            reset = page.get_by_role("button", name="Reset")
            page.mouse.move(5, 5)
            _settle(page)
            for i in range(warmup + presses):
                key = KEYS[i % len(KEYS)]
                reset.click()
                _settle(page)
                page.keyboard.down(key)
                time.sleep(0.15)
                page.keyboard.up(key)
                # The pictures shown after the key: [step, src set, loaded], in order, until the
                # episode's end (2 steps on the sample clip; the state line says "press Reset")
                # or episode_wait seconds.
                deadline = time.monotonic() + episode_wait
                shown = []
                while time.monotonic() < deadline:
                    shown = page.evaluate(
                        "(() => { const l = window.__latency; const k = l.keys[l.keys.length - 1][0];"
                        " return [k, Object.entries(l.srcs).filter(([s, v]) => v[0] > k && s in l.loads)"
                        ".map(([s, v]) => [v[1], v[0], l.loads[s]]).sort((a, b) => a[1] - b[1])]; })()")
                    t_key, shown = shown[0], shown[1]
                    if shown and "press Reset" in shown[-1][0]:
                        break
                    time.sleep(0.05)
                if not shown:
                    raise RuntimeError(f"trial {i}: no new picture after the key; the page saw "
                                       f"{page.evaluate('JSON.stringify(window.__latency)')}")
                if i >= warmup:
                    trials.append({"key": key, "t_key": t_key / 1e3,
                                   "shown": [(_step_of(st), a / 1e3, b / 1e3) for st, a, b in shown]})
        finally:
            browser.close()

    # Join with the server's log: the press that followed each key, the steps after it.
    events = [json.loads(line) for line in server_log.read_text().splitlines()]
    for tr in trials:
        press = next(e for e in events if e["event"] == "press" and e["t"] >= tr["t_key"] - 0.005)
        step, show = {}, {}  # the first of each step number after the press: this episode's
        for e in events:
            if e["event"] in ("step", "show") and e["k"] >= 1 and e["t0"] >= press["t"] - 0.005:
                (step if e["event"] == "step" else show).setdefault(e["k"], e)
        first, t_src, t_load = tr["shown"][0]
        st, sh = step[1], show[1]
        # The last encoding logged before _show returned is this picture's.
        enc = next(e for e in reversed(events[:events.index(sh)]) if e["event"] == "encode")
        # When the picture left: the flush inside _show if there is one (this commit's viewer),
        # else _show's return (viser sends it within its 1/60 s window after that).
        def sent(k, show=show):
            f = [e["t"] for e in events if e["event"] == "flush" and show[k]["t0"] <= e["t"] <= show[k]["t1"]]
            return f[0] if f else show[k]["t1"]

        tr.update(first_step_shown=first, round_trip=t_load - tr["t_key"],
                  key_to_server=press["t"] - tr["t_key"], wait=st["t0"] - press["t"],
                  step=st["t1"] - st["t0"], dynamics=st["dynamics"], observation=st["observation"],
                  show=sent(1) - st["t1"], show_total=sh["t1"] - st["t1"], encode=enc["s"],
                  jpeg_bytes=enc["bytes"], server_to_picture=t_load - sent(first),
                  src_to_load=t_load - t_src)
        # Each later step's picture: from when it left the server to the page (the 3D view's frames).
        tr["later_server_to_picture"] = [b - sent(k) for k, _, b in tr["shown"][1:] if k in show]
    return trials


def main() -> None:
    from splatnet.cli._args import size_hw

    if len(sys.argv) > 3 and sys.argv[1] == "--serve":  # the child process: see serve()
        sys.exit(serve(sys.argv[3], sys.argv[4:], hide_splats=sys.argv[2] == "hide-splats"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", help="a .scene file (default: the sample clip, reconstructed)")
    ap.add_argument("--clip", default=str(SAMPLE), help="the scene's source clip")
    ap.add_argument("--reconstruct-size", type=size_hw, default=(128, 224))
    ap.add_argument("--size", default="128x224", help="the viewer's --size (front-camera picture)")
    ap.add_argument("--presses", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--episode-wait", type=float, default=20.0,
                    help="seconds to wait for the episode's last picture before the next Reset")
    ap.add_argument("--hide-splats", action="store_true",
                    help="hide the splats in the browser's 3D view (software WebGL draws them slowly "
                         "here; the drive mode's picture path is unchanged)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "viewer_latency.json"))
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"viewer_latency: {CHROMIUM} is missing (make test-browser installs Debian's chromium)")

    with tempfile.TemporaryDirectory() as tmp:
        scene = args.scene
        if scene is None:
            scene = str(Path(tmp) / "sample.scene")
            h, w = args.reconstruct_size
            subprocess.run([sys.executable, "-m", "splatnet", "reconstruct", args.clip, "-o", scene,
                            "--size", f"{h}x{w}", "--quiet"], check=True, cwd=REPO)
        log = Path(tmp) / "server.jsonl"
        port = _free_port()
        console = Path(tmp) / "server.out"
        with open(console, "w") as sink:
            mode = "hide-splats" if args.hide_splats else "as-served"
            proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(log), scene, "--clip",
                                     args.clip, "--port", str(port), "--size", args.size], cwd=REPO,
                                    stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while "splatnet view: serving" not in console.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the viewer did not start:\n{console.read_text()}")
                time.sleep(0.2)
            trials = measure(f"http://127.0.0.1:{port}", log, args.presses, args.warmup, args.episode_wait)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    parts = ["round_trip", "key_to_server", "wait", "step", "dynamics", "observation", "show", "encode",
             "show_total", "server_to_picture", "src_to_load"]
    summary = {p: _quantiles([t[p] for t in trials]) for p in parts}
    print(f"\n{len(trials)} presses ({', '.join(sorted({t['key'] for t in trials}))}), front camera "
          f"{args.size}, JPEG {statistics.median(t['jpeg_bytes'] for t in trials) / 1e3:.1f} kB\n")
    print("| part | median (ms) | p90 (ms) |")
    print("|---|---|---|")
    for p in parts:
        print(f"| {p} | {1e3 * summary[p]['median']:.1f} | {1e3 * summary[p]['p90']:.1f} |")
    direct = sum(t["first_step_shown"] == 1 for t in trials)
    later = [x for t in trials for x in t["later_server_to_picture"]]
    if later:
        summary["later_server_to_picture"] = _quantiles(later)
    print(f"\nthe first new picture shown was step 1's in {direct} of {len(trials)} presses (else a later "
          "step's: the page applied both at once)")
    if later:
        p90 = summary["later_server_to_picture"]["p90"]
        print(f"later steps' pictures, _show's return → shown: median "
              f"{1e3 * statistics.median(later):.0f} ms, p90 {1e3 * p90:.0f} ms ({len(later)} pictures)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    out = {"scene": args.scene or f"{Path(args.clip).name} reconstructed at "
                                   f"{args.reconstruct_size[0]}x{args.reconstruct_size[1]}",
           "size": args.size, "hide_splats": args.hide_splats, "presses": len(trials), "commit": commit,
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "load_average": os.getloadavg(), "chromium": shutil.which("chromium") or CHROMIUM,
           "first_picture_was_step_1": direct, "summary_s": summary, "trials": trials}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp_out = Path(args.out).with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
