"""The ego vehicle: its size and limits (:class:`Vehicle`) and a kinematic bicycle model
(:func:`advance`), integrated exactly for an action held over a step.

**Model** (the kinematic bicycle model of Rajamani, *Vehicle Dynamics and Control*, §2.2, with
the reference point on the rear axle): a planar state ``(x, y, ψ, v)`` of the rear axle's centre
(metres), heading ``ψ`` (radians, counter-clockwise from +x) and forward speed ``v`` (m/s) evolves
under an acceleration ``a`` (m/s²) and a front-wheel steering angle ``δ`` (radians, positive =
left) as::

    ẋ = v cos ψ,   ẏ = v sin ψ,   ψ̇ = v tan δ / L,   v̇ = a        (L = wheelbase)

with ``v`` held within ``[0, max_speed]`` (braking stops the car; it does not reverse).

**Exact integration.** With ``a`` and ``δ`` constant over a step, the heading is linear in the
distance travelled ``s`` (``ψ = ψ₀ + κ s``, curvature ``κ = tan δ / L``), so whatever the speed
profile the path is a circular arc of curvature ``κ`` (a straight line for ``δ = 0``) and the
state after the step is closed-form: ``s`` from the (clipped) constant-acceleration speed profile,
then the chord ``2 sin(κ s / 2) / κ`` at angle ``ψ₀ + κ s / 2``. No sub-stepping, no drift.

**Limits** (:class:`Vehicle`): an action outside ``[−max_brake, max_accel] × [−max_steer,
max_steer]`` is clipped to it (not an error: a policy's output is routinely out of range); a
non-finite action is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from splatnet.errors import ValidationError


@dataclass(frozen=True)
class Vehicle:
    """The ego vehicle's geometry and limits (SI units; ego frame x forward, y left, z up).

    Attributes:
        wheelbase: ``L``, metres between the axles (a mid-size car: 2.8 m).
        max_steer: largest front-wheel angle, radians either way (0.6 rad ≈ 34°).
        max_accel: largest acceleration, m/s².
        max_brake: largest deceleration, m/s² (positive; the action's lower bound is its negative).
        max_speed: m/s; the speed is held within ``[0, max_speed]``.
        size: ``(length, width, height)`` of the ego's box in metres (a mid-size car).
        box_center: the box centre in the ego frame, metres. The default suits an ego origin on
            the ground below the vehicle's centre (splatnet's synthetic clips); a rear-axle origin
            (nuScenes) wants about ``(1.4, 0, 0.75)``, an origin at a roof LiDAR (PandaSet) a
            negative z.
        rear_axle_x: where the rear axle's centre is along the ego's x axis, metres (the
            bicycle model's reference point; 0: the ego origin is on the rear axle).
    """

    wheelbase: float = 2.8
    max_steer: float = 0.6
    max_accel: float = 4.0
    max_brake: float = 8.0
    max_speed: float = 40.0
    size: tuple[float, float, float] = (4.6, 1.9, 1.5)
    box_center: tuple[float, float, float] = (0.0, 0.0, 0.75)
    rear_axle_x: float = 0.0

    def __post_init__(self) -> None:
        for name, lo, hi in (("wheelbase", 0.1, 50.0), ("max_accel", 0.0, 100.0),
                             ("max_brake", 0.0, 100.0), ("max_speed", 0.0, 1000.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v <= hi:
                raise ValidationError(f"vehicle.{name}: expected a number in ({lo:g}, {hi:g}], "
                                      f"got {v!r}")
        s = self.max_steer
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s < math.pi / 2:
            raise ValidationError(f"vehicle.max_steer: expected radians in (0, pi/2), got {s!r}")
        size = _vector(self.size, "vehicle.size")
        if not np.all((size > 0) & (size <= 100)):
            raise ValidationError(f"vehicle.size: expected (length, width, height) in metres, each "
                                  f"in (0, 100], got {size.tolist()}")
        centre = _vector(self.box_center, "vehicle.box_center")
        if not np.all(np.abs(centre) <= 100):
            raise ValidationError(f"vehicle.box_center: expected metres within 100 m of the ego "
                                  f"origin, got {centre.tolist()}")
        r = self.rear_axle_x
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not abs(r) <= 100:
            raise ValidationError(f"vehicle.rear_axle_x: expected metres within ±100, got {r!r}")
        object.__setattr__(self, "size", tuple(float(x) for x in size))
        object.__setattr__(self, "box_center", tuple(float(x) for x in centre))

    @property
    def action_low(self) -> np.ndarray:
        """``[2]`` lower bounds of ``(acceleration, steering)``."""
        return np.array([-self.max_brake, -self.max_steer])

    @property
    def action_high(self) -> np.ndarray:
        """``[2]`` upper bounds of ``(acceleration, steering)``."""
        return np.array([self.max_accel, self.max_steer])

    def clip(self, action: np.ndarray) -> np.ndarray:
        """``(acceleration, steering)`` clipped to the limits (a copy, float64)."""
        return np.clip(np.asarray(action, dtype=np.float64), self.action_low, self.action_high)

    def box_to_ego(self) -> np.ndarray:
        """``[4, 4]`` pose of the ego's box in the ego frame (axes as the ego's)."""
        T = np.eye(4)
        T[:3, 3] = self.box_center
        return T


@dataclass(frozen=True)
class BicycleState:
    """The planar state of the rear axle's centre.

    Attributes:
        x, y: metres in the drive plane's frame.
        yaw: heading ``ψ``, radians counter-clockwise from the plane's +x.
        speed: forward speed ``v`` in m/s, within ``[0, max_speed]``.
    """

    x: float
    y: float
    yaw: float
    speed: float


def advance(state: BicycleState, accel: float, steer: float, dt: float,
            vehicle: Vehicle) -> BicycleState:
    """The state ``dt`` seconds later with ``(accel, steer)`` held (clipped to the vehicle's
    limits): exact for the model in the module docstring."""
    a = min(max(float(accel), -vehicle.max_brake), vehicle.max_accel)
    delta = min(max(float(steer), -vehicle.max_steer), vehicle.max_steer)
    s, v1 = _travel(state.speed, a, float(dt), vehicle.max_speed)
    kappa = math.tan(delta) / vehicle.wheelbase
    turn = kappa * s
    # Chord of the arc: 2 sin(κs/2)/κ = s · sinc(κs/2), stable as κ → 0.
    chord = s * float(np.sinc(turn / (2.0 * math.pi)))
    mid = state.yaw + turn / 2.0
    return BicycleState(state.x + chord * math.cos(mid), state.y + chord * math.sin(mid),
                        state.yaw + turn, v1)


def _travel(v0: float, a: float, dt: float, vmax: float) -> tuple[float, float]:
    """Distance travelled and final speed over ``dt`` s from speed ``v0`` under acceleration
    ``a``, the speed held within ``[0, vmax]`` (it stops at 0 or cruises at ``vmax``)."""
    if a > 0 and v0 + a * dt > vmax:
        t1 = max(vmax - v0, 0.0) / a  # time to reach the top speed
        return v0 * t1 + 0.5 * a * t1 * t1 + vmax * (dt - t1), vmax
    if a < 0 and v0 + a * dt < 0:
        return v0 * v0 / (-2.0 * a), 0.0  # stops within the step
    return v0 * dt + 0.5 * a * dt * dt, v0 + a * dt


def planar_pose(x: float, y: float, yaw: float) -> np.ndarray:
    """``[4, 4]`` pose at ``(x, y, 0)`` turned by ``yaw`` about +z."""
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[0, 3], T[1, 3] = x, y
    return T


def _vector(value: object, where: str) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: expected 3 numbers, got {value!r}") from None
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ValidationError(f"{where}: expected 3 finite numbers, got {value!r}")
    return v
