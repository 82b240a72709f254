"""The kinematic bicycle model (splatnet.sim.vehicle) against closed-form solutions written here
and a fine Runge-Kutta integration of its differential equations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splatnet.errors import ValidationError
from splatnet.sim import BicycleState, Vehicle, advance


def _run(state, accel, steer, dt, steps, vehicle):
    out = [state]
    for _ in range(steps):
        out.append(advance(out[-1], accel, steer, dt, vehicle))
    return out


def test_straight_line_constant_acceleration():
    v = Vehicle()
    start = BicycleState(1.0, -2.0, 0.3, 5.0)
    states = _run(start, 1.5, 0.0, 0.1, 30, v)
    for k, s in enumerate(states):
        t = 0.1 * k
        d = 5.0 * t + 0.5 * 1.5 * t * t  # x = v0 t + a t^2 / 2 along the heading
        assert s.x == pytest.approx(1.0 + d * math.cos(0.3), abs=1e-9)
        assert s.y == pytest.approx(-2.0 + d * math.sin(0.3), abs=1e-9)
        assert s.yaw == pytest.approx(0.3, abs=1e-12)
        assert s.speed == pytest.approx(5.0 + 1.5 * t, abs=1e-9)


def test_braking_stops_without_reversing():
    v = Vehicle(max_brake=8.0)
    states = _run(BicycleState(0.0, 0.0, 0.0, 10.0), -4.0, 0.0, 0.1, 40, v)
    # Stops after 2.5 s, 10^2 / (2 * 4) = 12.5 m on, and stays there.
    assert states[25].x == pytest.approx(12.5, abs=1e-9)
    assert states[25].speed == pytest.approx(0.0, abs=1e-12)
    assert states[40].x == pytest.approx(12.5, abs=1e-9)
    # A step that stops part-way: from 1 m/s at -8 m/s^2 for 0.5 s: 1 / 16 m.
    s = advance(BicycleState(0.0, 0.0, 0.0, 1.0), -8.0, 0.0, 0.5, v)
    assert (s.x, s.speed) == (pytest.approx(1.0 / 16.0, abs=1e-12), 0.0)


def test_top_speed_is_held():
    v = Vehicle(max_speed=10.0, max_accel=4.0)
    # From 8 m/s at 4 m/s^2: 10 m/s after 0.5 s; over 1 s: 8*0.5 + 2*0.25 + 10*0.5 = 9.5 m.
    s = advance(BicycleState(0.0, 0.0, 0.0, 8.0), 4.0, 0.0, 1.0, v)
    assert (s.x, s.speed) == (pytest.approx(9.5, abs=1e-12), 10.0)


@pytest.mark.parametrize("steer", [0.05, 0.3, -0.45])
def test_constant_radius_circle(steer):
    v = Vehicle(wheelbase=2.7)
    speed, dt, steps = 8.0, 0.1, 80
    radius = 2.7 / math.tan(steer)  # signed: positive turns left
    states = _run(BicycleState(0.0, 0.0, 0.0, speed), 0.0, steer, dt, steps, v)
    for k, s in enumerate(states):
        phi = speed * dt * k / radius  # angle turned about the centre (0, radius)
        assert s.x == pytest.approx(radius * math.sin(phi), abs=1e-9)
        assert s.y == pytest.approx(radius * (1.0 - math.cos(phi)), abs=1e-9)
        assert s.yaw == pytest.approx(phi, abs=1e-12)
        # Every point lies on the circle.
        assert math.hypot(s.x, s.y - radius) == pytest.approx(abs(radius), abs=1e-9)


def _rk4(state, accel, steer, T, L, n=20000):
    """The model's differential equations (no speed limits reached) by classic RK4."""
    y = np.array([state.x, state.y, state.yaw, state.speed])

    def f(y):
        return np.array([y[3] * math.cos(y[2]), y[3] * math.sin(y[2]), y[3] * math.tan(steer) / L,
                         accel])

    h = T / n
    for _ in range(n):
        k1 = f(y)
        k2 = f(y + h / 2 * k1)
        k3 = f(y + h / 2 * k2)
        k4 = f(y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


@pytest.mark.parametrize("accel,steer", [(2.0, 0.2), (-1.5, -0.35), (3.0, 0.0)])
def test_acceleration_while_turning_matches_the_ode(accel, steer):
    v = Vehicle()
    start = BicycleState(3.0, 1.0, -0.7, 6.0)
    s = advance(start, accel, steer, 1.5, v)
    ref = _rk4(start, accel, steer, 1.5, v.wheelbase)
    assert [s.x, s.y, s.yaw, s.speed] == pytest.approx(ref.tolist(), abs=1e-8)


def test_actions_outside_the_limits_are_clipped():
    v = Vehicle(max_accel=2.0, max_steer=0.4)
    start = BicycleState(0.0, 0.0, 0.0, 5.0)
    assert advance(start, 50.0, 3.0, 0.2, v) == advance(start, 2.0, 0.4, 0.2, v)
    assert v.clip([-100.0, -9.0]).tolist() == [-v.max_brake, -0.4]


@pytest.mark.parametrize("field,value", [("wheelbase", 0.0), ("max_steer", 2.0), ("max_speed", -1.0),
                                         ("size", (4.0, 0.0, 1.5)), ("box_center", (0.0, math.nan, 0.0)),
                                         ("max_accel", True)])
def test_bad_vehicle_is_one_error_naming_the_field(field, value):
    with pytest.raises(ValidationError, match=f"vehicle.{field}"):
        Vehicle(**{field: value})
