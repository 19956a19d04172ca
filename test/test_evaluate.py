"""`jepa-ros evaluate` on simulated rosbags (MCAP and sqlite3) made by `jepa-ros collect`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.convert import convert
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from jepa_wm.command_line import main
from jepa_wm.config import EncoderConfig, PlannerConfig, PredictorConfig, WorldModelConfig, package_share
from jepa_wm.data import BagError, BagWriter, iter_messages
from jepa_wm.data.rosbag_io import FLOAT64_ARRAY, IMAGE, JOINT_STATE, TYPESTORE
from jepa_wm.evaluation import episode_metrics as m
from jepa_wm.evaluation.command import EvaluationSettings
from jepa_wm.models import WorldModel, load_checkpoint, save_checkpoint

DEFAULT_CHECKPOINT = package_share() / "checkpoints" / "default"
TINY = WorldModelConfig(
    encoder=EncoderConfig(image_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2),
    predictor=PredictorConfig(embed_dim=32, depth=1, num_heads=2, latent_grid=2, max_steps=8),
)
FAST = ["--no-progress", "--plan-every", "8", "--energy-every", "4", "--num-random", "7"]


def collect(out: Path, storage: str, episodes: int, seed: int) -> Path:
    """Simulated exploration bags from the real CLI (MuJoCo arm, rosbags writer)."""
    assert main(["collect", "--episodes", str(episodes), "--steps", "30", "--out", str(out), "--storage", storage,
                 "--seed", str(seed), "--workers", "1", "--joint-state-rate", "25"]) == 0
    return out


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    return {"mcap": collect(root / "mcap", "mcap", 2, seed=101),
            "sqlite3": collect(root / "sqlite3", "sqlite3", 1, seed=202)}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(WorldModel(TINY), tmp_path_factory.mktemp("ckpt") / "tiny")


def evaluate(bags: list[Path], checkpoint: Path, out: Path, *extra: str) -> dict:
    args = ["evaluate", "--bag", *map(str, bags), "--checkpoint", str(checkpoint), "--out", str(out), *FAST, *extra]
    assert main(args) == 0
    return json.loads((out / "metrics.json").read_text())


def test_mcap_and_sqlite_bags_give_a_full_report(bags, tiny_checkpoint, tmp_path, capsys):
    assert next(bags["sqlite3"].rglob("*.db3")) and next(bags["mcap"].rglob("*.mcap"))
    metrics = evaluate([bags["mcap"], bags["sqlite3"]], tiny_checkpoint, tmp_path / "report", "--horizon", "3")
    printed = capsys.readouterr().out
    assert "x real time" in printed and "frames/s" in printed
    assert len(metrics["episodes"]) == 3
    for episode in metrics["episodes"]:
        prediction = episode["prediction"]
        assert prediction["horizon"] == [1, 2, 3] and prediction["starts"] > 10
        assert all(np.isfinite(prediction["model_l1"])) and all(v > 0 for v in prediction["copy_last_l1"])
        # Copy-last gets worse the further ahead it guesses: the arm keeps moving.
        assert prediction["copy_last_l1"][0] < prediction["copy_last_l1"][2]
        assert episode["probe"]["mae_rad"] > 0 and episode["planner"]["count"] >= 2 and episode["energy"]["count"] >= 4
    overall = metrics["overall"]
    assert overall["probe"]["validation"] == "by episode" and len(overall["probe"]["per_joint_mae_rad"]) == 6
    planner = overall["planner"]
    assert planner["count"] >= 6 and -1 <= planner["cosine"] <= 1 and len(planner["sign_agreement"]) == 6
    assert 0 <= overall["energy"]["mean_rank"] <= 1 and 0 <= overall["energy"]["mean_rank_vs_recorded"] <= 1
    timing = metrics["timing"]
    assert timing["frames"] == 90 and timing["x_realtime"] > 0
    assert timing["recorded_s"] == pytest.approx(3 * 29 * 0.2, rel=0.05)
    report = (tmp_path / "report" / "report.md").read_text()
    for plot in ("prediction_error.png", "planner_agreement.png", "energy_rank.png"):
        assert plot in report and (tmp_path / "report" / plot).stat().st_size > 1000
    # An untrained model is never ready; the verdict opens the report and ends the printout, check by check.
    assert not metrics["readiness"]["ready"] and report.startswith("# World model evaluation on recorded bags\n\n**NOT READY")
    assert "beats copy-last" in printed and "sees every joint" in printed and "ranks the recorded actions" in printed
    # Per joint probe figures, and the planner's bound said where planned actions pile up.
    assert all(f"| joint{j} |" in report for j in range(1, 7))
    assert metrics["action_bound_rad"] == pytest.approx(load_checkpoint(tiny_checkpoint).config.action_scale)
    assert "planned actions pile up there" in report


def test_compressed_images_reordered_joints_and_ros1_bags_give_the_same_figures(bags, tiny_checkpoint, tmp_path):
    source = bags["mcap"] / "episode_0000"
    reference = evaluate([source], tiny_checkpoint, tmp_path / "reference")
    variant = evaluate([compressed_and_reversed(source, tmp_path / "png")], tiny_checkpoint, tmp_path / "png_out",
                       "--image-topic", "/camera/image_raw/compressed")
    ros1 = evaluate([to_ros1(source, tmp_path / "episode.bag")], tiny_checkpoint, tmp_path / "ros1_out")
    for other in (variant, ros1):  # PNG is lossless and joints are matched by name: nothing may change
        assert other["episodes"][0]["frames"] == reference["episodes"][0]["frames"]
        expected = reference["overall"]["prediction"]["model_l1"]
        assert other["overall"]["prediction"]["model_l1"] == pytest.approx(expected)
        assert other["overall"]["planner"]["abs_error"] == pytest.approx(reference["overall"]["planner"]["abs_error"])


def compressed_and_reversed(source: Path, target: Path) -> Path:
    """The bag with PNG CompressedImage frames and joint states listing the joints in reverse order."""
    with BagWriter(target) as bag:
        for message in iter_messages(source):
            if message.msgtype == IMAGE:
                bag.write_compressed_image(f"{message.topic}/compressed", message.stamp_ns, message.payload, fmt="png")
            elif message.msgtype == JOINT_STATE:
                bag.write_joint_state(message.topic, message.stamp_ns, message.payload.names[::-1],
                                      message.payload.positions[::-1].copy())
            elif message.msgtype == FLOAT64_ARRAY:
                bag.write_command(message.topic, message.stamp_ns, message.payload)
    return target


def to_ros1(source: Path, target: Path) -> Path:
    """The bag as a ROS 1 .bag file, converted by rosbags."""
    convert([source], target, "mcap", 9, None, "none", None, get_typestore(Stores.ROS1_NOETIC), [], [], [], [])
    return target


TINY_TRAINING = """
world_model:
  encoder: {image_size: 64, patch_size: 16, embed_dim: 32, depth: 1, num_heads: 2}
  predictor: {embed_dim: 32, depth: 1, num_heads: 2, latent_grid: 2, max_steps: 8}
train:
  batch_size: 16
  steps: 200
  learning_rate: 3.0e-3
  warmup_steps: 20
  rollout_steps: 2
  val_every: 1000
  checkpoint_every: 1000
"""


def test_briefly_trained_model_beats_copy_last_on_its_training_bags(bags, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_TRAINING)
    checkpoint = tmp_path / "trained"
    torch.set_num_threads(1)  # tiny batches: one thread is several times faster on the shared 2-core CPU
    assert main(["train", "--bags", str(bags["mcap"]), "--config", str(config), "--model-config", str(config),
                 "--out", str(tmp_path / "run"), "--export", str(checkpoint)]) == 0
    metrics = evaluate([bags["mcap"]], checkpoint, tmp_path / "trained_report")
    prediction, energy = metrics["overall"]["prediction"], metrics["overall"]["energy"]
    assert prediction["model_l1"][0] < prediction["copy_last_l1"][0], prediction
    assert energy["mean_rank"] < 0.5 and energy["mean_rank_vs_recorded"] < 0.5, energy


@pytest.mark.skipif(not (DEFAULT_CHECKPOINT / "config.json").is_file(), reason="checkpoints/default is not built yet")
def test_default_checkpoint_beats_copy_last_and_prefers_the_recorded_action(bags, tmp_path):
    metrics = evaluate([bags["mcap"], bags["sqlite3"]], DEFAULT_CHECKPOINT, tmp_path / "default")
    prediction, energy = metrics["overall"]["prediction"], metrics["overall"]["energy"]
    assert prediction["model_l1"][0] < prediction["copy_last_l1"][0], prediction
    assert energy["mean_rank"] < 0.5, energy
    assert metrics["readiness"]["ready"], metrics["readiness"]["statement"]


def test_truncated_bag_names_the_file_and_what_was_readable(bags, tiny_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bags["mcap"] / "episode_0000", broken)
    storage = next(broken.glob("*.mcap"))
    with storage.open("r+b") as stream:
        stream.truncate(storage.stat().st_size // 2)
    with pytest.raises(BagError) as caught:
        evaluate([broken], tiny_checkpoint, tmp_path / "out")
    message = str(caught.value)
    assert str(broken) in message and "truncated or corrupt" in message and "/camera/image_raw" in message


def test_missing_topic_lists_the_topics_the_bag_has(bags, tiny_checkpoint, tmp_path):
    with pytest.raises(BagError) as caught:
        evaluate([bags["sqlite3"]], tiny_checkpoint, tmp_path / "out", "--image-topic", "/wrist/image")
    message = str(caught.value)
    assert "/wrist/image" in message and "/camera/image_raw" in message and "/joint_states" in message


def test_gap_is_reported_and_no_rollout_crosses_it(bags, tiny_checkpoint, tmp_path):
    source = bags["mcap"] / "episode_0001"
    holed = drop_window(source, tmp_path / "holed", start_s=2.0, length_s=1.5)
    metrics = evaluate([holed], tiny_checkpoint, tmp_path / "out", "--horizon", "2", "--goal-offset", "2")
    assert metrics["bag_gaps"], "the 1.5 s hole was not reported"
    runs = metrics["episodes"]
    assert len(runs) == 2 and sum(r["frames"] for r in runs) < 30
    for run in runs:  # each run is gap-free; starts leave room for the horizon inside it
        assert run["prediction"]["starts"] == run["frames"] - 2


def drop_window(source: Path, target: Path, start_s: float, length_s: float) -> Path:
    """Copy a bag without any message in [start, start + length) after its first message."""
    with AnyReader([source], default_typestore=TYPESTORE) as reader, \
            Writer(target, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=TYPESTORE) for c in reader.connections}
        begin = reader.start_time + int(start_s * 1e9)
        end = begin + int(length_s * 1e9)
        for connection, stamp, raw in reader.messages():
            if not begin <= stamp < end:
                writer.write(connections[connection.id], stamp, raw)
    return target


def test_metric_functions_on_known_values():
    segments = m.segment_ids(np.array([0, 10, 20, 30, 100, 110, 120]) * 1_000_000)
    assert segments.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert m.valid_starts(segments, 2).tolist() == [0, 1, 4]

    planned = np.array([[0.1, -0.2, 0.0], [0.2, 0.1, 0.05]])
    agreement = m.action_agreement(planned, np.array([[0.2, -0.4, 0.0], [0.2, -0.1, 0.1]]))
    assert agreement["cosine"] == pytest.approx((1.0 + (0.04 - 0.01 + 0.005) / (np.sqrt(0.0525) * np.sqrt(0.06))) / 2)
    assert agreement["sign_agreement"] == [1.0, 0.5, 1.0]  # joint 3 counts only the step where it moved
    still = m.action_agreement(planned, np.zeros_like(planned))  # nothing moved: no agreement to speak of
    assert still["sign_agreement"] == [None, None, None] and np.isnan(still["sign_agreement_mean"])
    assert EvaluationSettings().plan_every <= 10  # a 60-step bag gets several plans, not one

    from jepa_wm.evaluation.quality import readiness
    good = readiness({1: 0.4, 2: 0.5}, {"a": 0.9, "b": 0.8}, 0.2, probe_frames=5000)
    assert good.ready and good.statement.startswith("READY")
    # never ready without beating copy-last, whatever else it does well
    assert not readiness({1: 0.4, 2: 0.95}, {"a": 0.9}, 0.1).ready
    unseen = readiness({1: 0.4}, {"a": 0.9, "b": 0.2})
    assert not unseen.ready and "failed: sees every joint" in unseen.statement
    few = readiness({1: 0.4}, {"a": 0.9, "b": -3.0}, probe_frames=90)  # a probe of 90 frames says nothing
    assert few.ready and "[--] sees every joint: not judged, 90 frames are too few" in few.statement

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(12, 2))
    latents = [torch.as_tensor(rng.normal(size=(40, 3, 4))) for _ in range(3)]  # [T, N, D]
    joints = [z.flatten(1) @ torch.as_tensor(weights) for z in latents]
    probe = m.linear_probe(latents, joints)
    assert max(probe["probe_mae"]) < 0.05 < min(probe["mean_baseline_mae"])
    assert len(probe["per_joint_r2"]) == 2 and min(probe["per_joint_r2"]) > 0.99


def test_bags_at_another_time_step_than_the_checkpoints_are_refused_with_the_fix(bags, tmp_path):
    torch.manual_seed(0)
    ckpt = save_checkpoint(WorldModel(TINY), tmp_path / "slow", {"period_s": 0.4})  # trained at 2.5 Hz
    with pytest.raises(BagError, match=r"0\.200 s step \(5\.00 Hz\), but the checkpoint was trained at 0\.400 s.*"
                                       r"pass --period 0\.400 to resample them"):
        evaluate([bags["mcap"]], ckpt, tmp_path / "out")
    assert evaluate([bags["mcap"]], ckpt, tmp_path / "resampled", "--period", "0.4")["episodes"]


def test_end_effector_actions_train_evaluate_and_plan_on_the_robots_kinematics(bags, tmp_path, capsys):
    import yaml

    from jepa_wm.config import TrainConfig, load_robot, to_dict
    from jepa_wm.controller import LatentMPC
    from jepa_wm.reaching import make_sim

    config = WorldModelConfig(encoder=TINY.encoder, predictor=TINY.predictor, action_space="end_effector")
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"world_model": to_dict(config)}))
    train = TrainConfig(steps=4, batch_size=4, warmup_steps=1, context_steps=1, rollout_steps=2, val_every=4,
                        checkpoint_every=4, val_fraction=0.5)
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({"train": to_dict(train)}))
    assert main(["train", "--bags", str(bags["mcap"]), "--robot", "jepa_arm", "--model-config", str(tmp_path / "model.yaml"),
                 "--config", str(tmp_path / "train.yaml"), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 0
    assert "m or rad of pose change" in capsys.readouterr().out
    checkpoint = tmp_path / "run" / "checkpoint"
    model = load_checkpoint(checkpoint)
    robot = load_robot("jepa_arm")
    assert model.config.action_space == "end_effector" and model.config.joint_names == robot.joint_names
    assert model.predictor.action_encoder.in_features == 7
    # evaluate reads the joint-space bags into poses with the preset the checkpoint was trained for
    metrics = evaluate([bags["mcap"]], checkpoint, tmp_path / "eval")
    assert metrics["joint_names"] == ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    assert len(metrics["overall"]["probe"]["per_joint_r2"]) == 7
    # the node's controller: pose from forward kinematics, joint commands from inverse kinematics
    sim = make_sim(64, 0)
    mpc = LatentMPC.from_checkpoint(checkpoint, PlannerConfig(num_samples=8, num_elites=4, iterations=1, horizon=2), robot,
                                    hold_at_goal=False)
    mpc.set_goal(sim.render())
    out = mpc.step(sim.render(), sim.joint_positions)
    assert out.command.shape == (len(robot.joint_names),) and out.action.shape == (7,)
    assert np.all(out.command >= robot.joint_lower) and np.all(out.command <= robot.joint_upper)
