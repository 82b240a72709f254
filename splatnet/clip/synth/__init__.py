"""Synthetic driving clips: a procedural street ray-cast with open3d.

``generate(dst, seed)`` writes a clip (format v1) with a surround camera rig, optional target
cameras, LiDAR sweeps, ground-truth depth, sky masks and every car's pose and velocity in the
manifest's metadata; ``render_clip(seed)`` returns the same data in memory. open3d is imported
on first use only.
"""

from splatnet.clip.synth.pipeline import MAX_DEPTH, SynthClip, generate, render_clip

__all__ = ["MAX_DEPTH", "SynthClip", "generate", "render_clip"]
