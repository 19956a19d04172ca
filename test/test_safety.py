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
    # the velocity limit is the last word; a position limit holds whenever a command can keep both
    rng = np.random.default_rng(0)
    checked = refused = 0
    for _ in range(2000):
        target = rng.uniform(-10, 10, 3)
        current = rng.uniform(-3, 3, 3)  # sometimes already outside the limits
        dt = rng.uniform(1e-3, 1.0)
        explored = np.sort(rng.uniform(LOWER - 0.5, UPPER + 0.5, (2, 3)), axis=0)
        explored = (np.minimum(explored[0], UPPER), np.maximum(explored[1], LOWER))
        explored = (np.minimum(explored[0], explored[1]), explored[1])
        try:
            command = clamp_command(target, current, LOWER, UPPER, VMAX, dt, NAMES, explored).command
        except CommandError as err:
            # only when a joint is further outside its limits than one step can bring it back
            assert "outside their position limits by more than one step" in str(err)
            assert np.any((current < LOWER - VMAX * dt) | (current > UPPER + VMAX * dt))
            refused += 1
            continue
        checked += 1
        assert np.all(command >= LOWER) and np.all(command <= UPPER)
        assert np.all(np.abs(command - current) <= VMAX * dt + 1e-12)
        assert np.all(clamp_to_limits(target, LOWER, UPPER, NAMES).command <= UPPER)
    assert checked > 100 and refused > 100


def test_a_pose_outside_the_allowed_range_is_left_at_the_velocity_limit_never_jumped_from():
    # the arm at joint1 = 2.0 rad, the model's explored range ends at 0.95 rad: 0.3 rad per 0.2 s step
    names, lower, upper = ("joint1",), np.array([-np.pi]), np.array([np.pi])
    result = clamp_command([0.5], [2.0], lower, upper, [1.5], 0.2, names, (np.array([-1.1]), np.array([0.95])))
    assert result.command == pytest.approx([1.7])
    assert "velocity limit 1.5000 rad/s" in result.warnings[0] and "commanded 1.7000 rad" in result.warnings[0]
    beyond = clamp_command([0.0], [0.5], lower, upper, [1.5], 0.2, names, (np.array([0.2]), np.array([0.95])))
    assert beyond.command == pytest.approx([0.2]) and "allowed range [0.2000, 0.9500]" in beyond.warnings[0]
    # inside the range again, an ordinary step is left alone
    assert clamp_command([0.5], [0.6], lower, upper, [1.5], 0.2, names, (np.array([-1.1]), np.array([0.95]))).warnings == []


def test_a_joint_just_past_its_limit_is_brought_back_within_one_step():
    result = clamp_command([5.0, 0.0, 0.0], [1.05, 0.0, 0.0], LOWER, UPPER, VMAX, 0.1, NAMES)
    assert result.command[0] == pytest.approx(1.0)


@pytest.mark.parametrize("allowed", [(np.array([0.5, -1, 0]), np.array([0.4, 1, 0.5])),
                                     (np.array([np.nan, -1, 0]), np.array([0.4, 1, 0.5])),
                                     (np.array([-1, -1, 0]), np.array([np.inf, 1, 0.5]))])
def test_an_inverted_or_non_finite_allowed_range_is_refused_naming_the_joint(allowed):
    with pytest.raises(CommandError, match="joint1: allowed range"):
        clamp_command([0.0] * 3, [0.0] * 3, LOWER, UPPER, VMAX, 0.1, NAMES, allowed)


@pytest.mark.parametrize("vmax", [[1.0, np.inf, 1.0], [1.0, np.nan, 1.0]])
def test_non_finite_velocity_limits_are_refused(vmax):
    with pytest.raises(CommandError, match="velocity_limits"):
        clamp_command([0.0] * 3, [0.0] * 3, LOWER, UPPER, vmax, 0.1, NAMES)


@pytest.mark.parametrize("dt", [0.0, -0.1, np.nan])
def test_bad_dt_is_refused(dt):
    with pytest.raises(CommandError, match="dt="):
        clamp_command([0.0] * 3, [0.0] * 3, LOWER, UPPER, VMAX, dt, NAMES)


def test_bad_limits_are_refused():
    with pytest.raises(CommandError, match=r"joint2: limits \[3.0, 2.0\]: expected finite values with lower <= upper"):
        clamp_to_limits([0.0] * 3, [-1.0, 3.0, 0.0], UPPER, NAMES)
    with pytest.raises(CommandError, match="velocity_limits"):
        clamp_command([0.0] * 3, [0.0] * 3, LOWER, UPPER, [1.0, 0.0, 1.0], 0.1, NAMES)
