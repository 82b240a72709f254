"""``Realism``: camera effects and scene variety that bring synthetic clips closer to real footage.

Every effect is off in ``Realism()`` (the default clip is unchanged); ``PRESETS["real"]`` turns on
a combination motivated by real driving cameras, and ``PRESETS["varied"]`` adds rigs of 3-8
cameras. ``parse_realism("real", ["vignetting=0.3"])`` builds one from a preset and
``FIELD=VALUE`` overrides (what ``splatnet synth --realism/--realism-set`` use).

Each random draw (exposure, white balance, hood, rig, sky, speed, noise) comes from its own
stream of the clip's seed, so one setting does not change what another draws, and the same seed
always gives the same clip.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from splatnet.errors import ValidationError

#: Sector names the rig gives its cameras (``cam_<sector>``): what ``hood_cameras`` may name.
SECTORS = ("front", "front_left", "left", "back_left", "back", "back_right", "right", "front_right")


@dataclass(frozen=True)
class Realism:
    """What the generator adds on top of the clean render (all off by default).

    Image effects run in this order on the rendered float image, as in a camera: motion blur,
    the ego's hood, vignetting, auto exposure, exposure and white balance (clipped at white),
    sensor noise, 8-bit quantisation, JPEG round trip.
    """

    # ---------------------------------------------------------------- camera / image effects
    exposure_stops: float = 0.0
    """Per-camera exposure gain ``2**u``, ``u`` uniform in ``[-exposure_stops, exposure_stops]``
    (0: off). Real rigs auto-expose each camera on its own."""
    auto_exposure: float = 0.0
    """Mean image brightness (in [0, 1], after clipping at white) that each camera's exposure
    is set to on the clip's first frame and then held, as a camera's auto exposure does (0: off,
    the render's own brightness, a dark 0.2-0.35). Real frames measure 0.36-0.48."""
    white_balance: float = 0.0
    """Per-camera red and blue gains (green stays 1) uniform in ``[1 - wb, 1 + wb]`` (0: off)."""
    vignetting: float = 0.0
    """Corner darkening: brightness at the corner of a centred image / at the optical centre is
    ``1 - vignetting``, with a cos^4 (natural vignetting) falloff in between (0: off)."""
    read_noise: float = 0.0
    """Std of signal-independent Gaussian sensor noise, in image units (1 = white; 0: off)."""
    shot_noise: float = 0.0
    """Std of signal-dependent (photon) noise at white: at level ``x`` its std is
    ``shot_noise * sqrt(x)`` (0: off)."""
    exposure_time: float = 0.0
    """Shutter time in seconds, centred on each frame's timestamp: motion blur along the
    projected motion of every pixel (ego motion, and the object's own motion for cars and
    pedestrians) (0: off)."""
    jpeg_quality: int = 0
    """Encode and decode every image as JPEG at this quality, 1-100, 4:2:0 chroma (0: off); the
    clip then stores the result in its own image format."""
    hood_cameras: tuple[str, ...] = ()
    """Rig cameras that see the ego's hood (bonnet or boot) at the bottom of the image, by name
    (``"cam_front"``, ``"cam_back"``, ... ``cam_<sector>``); names a clip's rig lacks are skipped.
    Hood pixels are masked out in the clip's per-camera mask, have no depth and are not sky."""
    hood_height: tuple[float, float] = (0.06, 0.16)
    """Range of the hood's height at the image centre, as a fraction of the image height, drawn
    per camera."""

    # ---------------------------------------------------------------- scene variety
    sky_variety: bool = False
    """Sun elevation 3-75° (long low-sun shadows), clear / hazy / overcast weather with varied
    sky gradients, warm low sun, haze distances 150-1500 m (off: 15-60°, clear or overcast)."""
    texture_variety: bool = False
    """Richer surfaces: asphalt repair patches, cracks and oil-darkened lane centres, facade
    grime streaks and per-building tints, sidewalk stains."""
    ego_speed: tuple[float, float] | None = None
    """Range (m/s) of the ego's speed, drawn per clip (None: 8-12 m/s)."""

    # ---------------------------------------------------------------- rig variety
    rig_cameras: tuple[int, int] | None = None
    """Range of rig cameras per clip, drawn per seed (None: the ``cameras`` argument)."""
    mount_height: tuple[float, float] | None = None
    """Range (m above the ground) of each rig camera's own height (None: all at the roof,
    1.5-1.9 m)."""
    hfov_deg: tuple[float, float] | None = None
    """Range of each rig camera's horizontal field of view in degrees (None: ~70° front camera,
    95-120° others so neighbours overlap)."""
    pitch_deg: tuple[float, float] | None = None
    """Range of each rig camera's downward pitch in degrees (None: 0-4°)."""
    roll_deg: float = 0.0
    """Each rig camera's roll uniform in ``[-roll_deg, roll_deg]`` degrees (0: ~0.3° jitter)."""

    def __post_init__(self):
        _validate(self)

    @property
    def active(self) -> bool:
        """Does this differ from the default (all off)?"""
        return self != Realism()

    @property
    def image_effects(self) -> bool:
        return bool(self.exposure_stops or self.auto_exposure or self.white_balance
                    or self.vignetting
                    or self.read_noise or self.shot_noise or self.exposure_time
                    or self.jpeg_quality or self.hood_cameras)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _fail(name: str, problem: str, value) -> None:
    raise ValidationError(f"synth: realism.{name} {problem}, got {value!r}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _range(r: Realism, name: str, lo: float, hi: float, integer: bool = False) -> None:
    v = getattr(r, name)
    if v is None:
        return
    ok = isinstance(v, tuple) and len(v) == 2 and all(
        _number(x) and (not integer or float(x).is_integer()) for x in v)
    if not ok or not lo <= v[0] <= v[1] <= hi:
        kind = "integers" if integer else "numbers"
        _fail(name, f"must be two {kind} lo <= hi within [{lo:g}, {hi:g}]", v)


def _validate(r: Realism) -> None:
    for name, lo, hi in (("exposure_stops", 0, 3), ("auto_exposure", 0, 0.9),
                         ("white_balance", 0, 0.5),
                         ("vignetting", 0, 0.9), ("read_noise", 0, 0.2), ("shot_noise", 0, 0.2),
                         ("exposure_time", 0, 0.1), ("roll_deg", 0, 10)):
        v = getattr(r, name)
        if not (_number(v) and lo <= v <= hi):
            _fail(name, f"must be a number in [{lo:g}, {hi:g}]", v)
    q = r.jpeg_quality
    if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q <= 100:
        _fail("jpeg_quality", "must be an integer in [1, 100], or 0 for off", q)
    if not isinstance(r.hood_cameras, tuple):
        _fail("hood_cameras", "must be a tuple of camera names", r.hood_cameras)
    valid = {f"cam_{s}" for s in SECTORS}
    for name in r.hood_cameras:
        if name not in valid:
            _fail("hood_cameras", f"names cam_<sector> with sector one of {', '.join(SECTORS)}",
                  name)
    _range(r, "hood_height", 0.01, 0.5)
    if r.hood_height is None:
        _fail("hood_height", "must be a range (lo, hi)", None)
    for name in ("sky_variety", "texture_variety"):
        if not isinstance(getattr(r, name), bool):
            _fail(name, "must be true or false", getattr(r, name))
    _range(r, "ego_speed", 0.0, 30.0)
    _range(r, "rig_cameras", 1, 12, integer=True)
    _range(r, "mount_height", 0.5, 3.0)
    _range(r, "hfov_deg", 20.0, 150.0)
    _range(r, "pitch_deg", -20.0, 30.0)


#: Named settings. ``"real"``'s values and where they come from (measured on the real frames in
#: the project's shared sample data where said, else a judgement):
#: - auto exposure to a mean of 0.42: 18 PandaSet, DDAD and nuScenes frames measure 0.36-0.48
#:   (median 0.41), the clean renders 0.2-0.35;
#: - exposure ±0.5 stop: DDAD's six cameras of one frame differ in mean brightness by up to
#:   1.3× (content and exposure together); white balance ±8 %: judgement;
#: - vignetting 0.2 (corner at 80 %): judgement, what lens shading correction typically leaves
#:   of a wide lens's cos^4 falloff (cos^4 50° = 0.17);
#: - read noise 0.003 and shot noise 0.01 at white (about 1-2.5 DN): noise estimated in flat
#:   regions of those frames resized to 448 px wide is about 0.2-2 DN;
#: - 5 ms shutter: daylight automotive exposures are 1-10 ms;
#: - JPEG quality 85: those datasets store quality 75 (PandaSet, DDAD) and 80 (nuScenes), read
#:   from their quantisation tables, at 4-8× the training resolution, where resizing hides most
#:   of the blocking;
#: - the hood in the front and back cameras at 5-15 % of the image height (DDAD's cameras show
#:   theirs); sky and texture variety; ego speeds 1-15 m/s (PandaSet's sample drives at
#:   2.7 m/s); camera heights 1.4-2.0 m, pitch -2..6°, roll ±1.5°.
PRESETS: dict[str, Realism] = {
    "none": Realism(),
    "real": Realism(
        auto_exposure=0.42, exposure_stops=0.5, white_balance=0.08, vignetting=0.2,
        read_noise=0.003, shot_noise=0.01, exposure_time=0.005, jpeg_quality=85,
        hood_cameras=("cam_front", "cam_back"), hood_height=(0.05, 0.15),
        sky_variety=True, texture_variety=True, ego_speed=(1.0, 15.0),
        mount_height=(1.4, 2.0), pitch_deg=(-2.0, 6.0), roll_deg=1.5,
    ),
}
PRESETS["varied"] = replace(PRESETS["real"], rig_cameras=(3, 8), hfov_deg=(55.0, 120.0))


def resolve(realism: Realism | str | None) -> Realism:
    """A :class:`Realism` from itself, a preset name or None (= all off)."""
    if realism is None:
        return Realism()
    if isinstance(realism, Realism):
        return realism
    if isinstance(realism, str) and realism in PRESETS:
        return PRESETS[realism]
    raise ValidationError(f"synth: realism must be a Realism or one of the presets "
                          f"{', '.join(PRESETS)}, got {realism!r}")


def _parse_value(name: str, text: str, current):
    text = text.strip()
    if name in ("sky_variety", "texture_variety"):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError
    if name == "hood_cameras":
        return tuple(x.strip() for x in text.split(",") if x.strip())
    if name == "jpeg_quality":
        return int(text)
    if isinstance(current, tuple) or current is None:
        if text.lower() in ("none", "off", ""):
            return None
        parts = text.replace(":", ",").split(",")
        cast = int if name == "rig_cameras" else float
        if len(parts) == 1:
            return (cast(parts[0]),) * 2
        return tuple(cast(p) for p in parts)
    return float(text)


def parse_realism(preset: str | None, overrides: list[str] | tuple[str, ...] = ()) -> Realism:
    """A preset (None: ``"none"``) with ``FIELD=VALUE`` overrides; ranges are ``LO,HI`` (or one
    number), ``hood_cameras`` a comma-separated list, ``none`` clears an optional range."""
    base = resolve(preset or "none")
    names = {f.name for f in fields(Realism)}
    changes = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in names:
            raise ValidationError(f"--realism-set expects FIELD=VALUE with FIELD one of "
                                  f"{', '.join(sorted(names))}, got {item!r}")
        try:
            changes[key] = _parse_value(key, text, getattr(base, key))
        except ValueError:
            raise ValidationError(f"--realism-set {key}: cannot read {text!r}") from None
    return replace(base, **changes)
