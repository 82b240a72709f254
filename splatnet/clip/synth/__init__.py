"""Synthetic driving clips: a procedural street ray-cast with open3d.

``generate(dst, seed)`` (CLI: ``splatnet synth DST --seed S``) writes a clip in format 1.1
(``docs/clip-format.md``: format 1 plus actor tracks); ``render_clip(seed)`` returns the same
data in memory as a :class:`SynthClip`. The same arguments always give the same arrays (and,
on one machine, the same bytes); different seeds differ in street layout, widths and
curvature, building heights and facades, cars, pedestrians, colours, sun, sky and camera
heights.

What a clip holds:

- **cameras**: ``cameras`` rig cameras round the roof (1.5-1.9 m), yaws spread round 360° (the
  first looks forward, ~70° hfov in a 6-camera rig; the others ~95-120° so neighbours overlap),
  slightly pitched down, OpenCV frames; plus ``targets`` extra cameras (role ``"target"``)
  between rig yaws, 0.5-2 m to the side of the rig, for supervision only.
- **frames**: ``frame_interval`` (0.1 s) apart; the ego drives at 8-12 m/s along a lane of a
  straight or gently curved street. The world frame is the ego frame of frame 0 (x forward,
  y left, z up; ego origin on the ground below the vehicle centre).
- **images**: sun (Lambert, shadow rays) + sky ambient shading of solid procedural textures
  (asphalt with lane markings, kerbs, paving, facades with windows and doors, car bodies with
  glass, lights and wheels, foliage, bark), sky gradient with clouds and sun glow, distance haze.
- **depths**: camera-z metres from the same ray casts; 0 where the ray hits nothing (sky) or
  lies beyond ``MAX_DEPTH`` (250 m, the 16-bit PNG format's range).
- **sky masks**: True exactly where the camera ray hits nothing.
- **LiDAR**: one instantaneous sweep per frame from a roof sensor (32 beams from -25° to +15°,
  1024 azimuths, 0.5-80 m), stored in the ego frame with a reflectivity-based intensity.
- **actors** (manifest ``actors``, ``Clip.actors``): every car (parked or moving) and pedestrian
  of the street, seen or not, as a :class:`splatnet.clip.Actor` over every frame: id ``car_<k>``
  / ``ped_<k>`` (layout order; the same arguments give the same ids), label ``"car"`` /
  ``"pedestrian"``, the tight box of its mesh (x forward, y left, z up, origin at the box
  centre), its exact box-to-world pose at each frame's time (world frame as the ego poses) and
  whether it moves (:mod:`splatnet.clip.synth.tracks`).
- **metadata** (manifest): seed, generator version, street parameters, sun direction (world),
  camera yaws/hfovs, and for every car and pedestrian its box size and, per frame, the world
  position of the box's bottom centre, yaw and velocity (m/s). Moving objects are re-posed and
  re-cast at each frame's time, so images, depths and LiDAR agree with these poses.

Realism (``realism=``, CLI ``--realism PRESET --realism-set FIELD=VALUE``): a
:class:`Realism` of camera effects and scene variety, all off by default (the clip above):
per-camera exposure and white balance, cos^4 vignetting, shot and read noise, motion blur over
a shutter time (ego and object motion), a JPEG round trip, the ego's hood at the bottom of
chosen cameras (masked out in the clip's per-camera validity mask, no depth there), a wider sky
(low sun, haze, weather), richer road and facade textures, and varied rigs (camera count,
heights, fields of view, pitch, roll) and ego speeds. Presets: ``"real"`` (values and their
sources in :data:`splatnet.clip.synth.realism.PRESETS`) and ``"varied"`` (``"real"`` with 3-8
cameras of 55-120° hfov). The manifest's ``metadata["realism"]`` records the settings and what
each camera drew.

Ground truth for edited replays:

- ``target_offsets=[1.0, -2.0]`` (CLI ``--target-offsets=1,-2``): every rig camera shifted by
  each offset along the ego's y axis (metres; positive = left, negative = right), at every
  frame, as extra ``"target"`` cameras named ``<camera>.off1`` / ``<camera>.offm2`` (``m`` for
  minus; offsets to the millimetre): what the rig sees from an ego path moved sideways. They
  share their rig camera's realism look; nothing else in the clip changes.
- ``without_actors=["car_3", "ped_0"]`` (CLI ``--without-actors car_3,ped_0``): the same clip
  (same seed and options) with those actors taken out of the world: images (and their shadows),
  depths, sky masks, LiDAR, the actors list and ``metadata["objects"]`` lose them, and
  ``metadata["without_actors"]`` names them; cameras, target placement, exposure and every
  other pixel stay as in the full clip. An unknown id is one error listing the clip's ids.

open3d is imported on first use only.
"""

from splatnet.clip.synth.pipeline import MAX_DEPTH, SynthClip, generate, render_clip
from splatnet.clip.synth.realism import PRESETS, Realism, parse_realism

__all__ = ["MAX_DEPTH", "PRESETS", "Realism", "SynthClip", "generate", "parse_realism", "render_clip"]
