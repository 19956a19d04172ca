"""Safety clamps: malformed commands raise naming the joint; clamping never passes a limit."""

import numpy as np
import pytest

from jepa_wm.safety import ClampResult, CommandError, check_command, clamp_command, clamp_to_limits

NAMES = ("joint1", "joint2", "joint3")
LOWER = np.array([-1.0, -2.0, 0.0])
UPPER = np.array([1.0, 2.0, 0.5])
VMAX = np.array([1.0, 2.0, 0.5])


def test_check_command_returns_float64():
    values = check_command([0.1, 0.2, 0.3], NAMES)
    assert values.dtype == np.float64 and values.tolist() == [0.1, 0.2, 0.3]


@pytest.mark.parametrize("values", [[0.1, 0.2], [0.1, 0.2, 0.3, 0.4], [[0.1, 0.2, 0.3]]])
def test_wrong_length_names_the_expected_joints(values):
    with pytest.raises(CommandError, match=r"expected \[3\] values for joints \['joint1', 'joint2', 'joint3'\]"):
        check_command(values, NAMES)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_value_names_joint_and_value(bad):
    with pytest.raises(CommandError, match=rf"joint2={bad}"):
        check_command([0.0, bad, 0.0], NAMES)
    with pytest.raises(CommandError, match="joint2"):
        clamp_command([0.0, bad, 0.0], [0.0, 0.0, 0.0], LOWER, UPPER, VMAX, 0.1, NAMES)


def test_non_finite_current_position_is_refused():
    with pytest.raises(CommandError, match="joint3=nan"):
        clamp_command([0.0, 0.0, 0.0], [0.0, 0.0, np.nan], LOWER, UPPER, VMAX, 0.1, NAMES)


def test_out_of_limit_target_is_clamped_with_a_warning_naming_joint_value_and_limit():
    result = clamp_to_limits([1.5, 0.0, -0.25], LOWER, UPPER, NAMES)
    assert isinstance(result, ClampResult)
    assert result.command.tolist() == [1.0, 0.0, 0.0]
    assert len(result.warnings) == 2
    assert "joint1" in result.warnings[0] and "1.5000" in result.warnings[0] and "upper limit 1.0000" in result.warnings[0]
    assert "joint3" in result.warnings[1] and "-0.2500" in result.warnings[1] and "lower limit 0.0000" in result.warnings[1]


def test_velocity_clamp_is_relative_to_current_position_and_dt():
    result = clamp_command([0.9, -1.0, 0.1], [0.0, 0.0, 0.0], LOWER, UPPER, VMAX, 0.1, NAMES)
    assert result.command == pytest.approx([0.1, -0.2, 0.05])
    assert len(result.warnings) == 3
    assert "joint1" in result.warnings[0] and "velocity limit 1.0000 rad/s" in result.warnings[0]
    inside = clamp_command([0.05, 0.1, 0.02], [0.0, 0.0, 0.0], LOWER, UPPER, VMAX, 0.1, NAMES)
    assert inside.command.tolist() == [0.05, 0.1, 0.02] and inside.warnings == []


def test_one_warning_per_joint_even_when_both_limits_apply():
    result = clamp_command([5.0, 0.0, 0.0], [0.0, 0.0, 0.0], LOWER, UPPER, VMAX, 0.1, NAMES)
    assert len(result.warnings) == 1
    assert "upper limit" in result.warnings[0] and "velocity limit" in result.warnings[0]


def test_clamping_never_passes_a_limit():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        target = rng.uniform(-10, 10, 3)
        current = rng.uniform(-3, 3, 3)  # sometimes already outside the limits
        dt = rng.uniform(1e-3, 1.0)
        command = clamp_command(target, current, LOWER, UPPER, VMAX, dt, NAMES).command
        assert np.all(command >= LOWER) and np.all(command <= UPPER)
        inside = (current >= LOWER) & (current <= UPPER)
        step = np.abs(command - current)
        assert np.all(step[inside] <= VMAX[inside] * dt + 1e-12)
        assert np.all(clamp_to_limits(target, LOWER, UPPER, NAMES).command <= UPPER)


@pytest.mark.parametrize("dt", [0.0, -0.1, np.nan])
def test_bad_dt_is_refused(dt):
    with pytest.raises(CommandError, match="dt="):
        clamp_command([0.0] * 3, [0.0] * 3, LOWER, UPPER, VMAX, dt, NAMES)


def test_bad_limits_are_refused():
    with pytest.raises(CommandError, match="joint2: lower limit 3.0 is above upper limit 2.0"):
        clamp_to_limits([0.0] * 3, [-1.0, 3.0, 0.0], UPPER, NAMES)
    with pytest.raises(CommandError, match="velocity_limits"):
        clamp_command([0.0] * 3, [0.0] * 3, LOWER, UPPER, [1.0, 0.0, 1.0], 0.1, NAMES)
