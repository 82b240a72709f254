"""Closed-loop driving in a reconstructed scene (docs/simulation.md): :class:`DrivingEnv`, a
Gymnasium environment over a :class:`~splatnet.scene.Scene`; the ego's :class:`Vehicle` and its
kinematic bicycle model; the default :class:`Reward`.

Importing this package registers the environment with Gymnasium as ``"splatnet/Driving-v0"``
(``gymnasium.make("splatnet/Driving-v0", scene=scene, ...)``).
"""

import gymnasium

from splatnet.sim.env import ENV_ID, DrivingEnv, Reward
from splatnet.sim.vehicle import BicycleState, Vehicle, advance

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="splatnet.sim.env:DrivingEnv")

__all__ = ["ENV_ID", "BicycleState", "DrivingEnv", "Reward", "Vehicle", "advance"]
