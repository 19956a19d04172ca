"""Training: a short run on tiny real bags lowers the loss, writes its reports, resumes; torchrun DDP runs."""

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from jepa_wm.command_line import console_main, main
from jepa_wm.config import ConfigError, TrainConfig, load_robot, to_dict
from jepa_wm.data import read_episodes
from jepa_wm.models.checkpoint import load_checkpoint, read_checkpoint_config
from jepa_wm.models.world_model import WorldModel
from jepa_wm.training.trainer import learning_rate, loss_terms
from wm_fixtures import tiny_config, write_toy_bags

TRAIN = {"batch_size": 8, "warmup_steps": 5, "learning_rate": 3e-3, "context_steps": 1, "rollout_steps": 3,
         "val_every": 8, "checkpoint_every": 8, "val_fraction": 0.25, "seed": 0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    write_toy_bags(root / "bags", episodes=4, steps=16)
    (root / "model.yaml").write_text(yaml.safe_dump({"world_model": to_dict(tiny_config())}))
    (root / "train.yaml").write_text(yaml.safe_dump({"train": TRAIN}))
    return root


def _args(root: Path, out: str, *extra: str) -> list[str]:
    return ["train", "--bags", str(root / "bags"), "--config", str(root / "train.yaml"),
            "--model-config", str(root / "model.yaml"), "--out", str(root / out), *extra]


def test_short_run_lowers_loss_and_resumes(setup):
    root = setup
    assert main(_args(root, "run", "--steps", "24", "--export", str(root / "exported"))) == 0
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    history = metrics["history"]
    assert [h["step"] for h in history] == [8, 16, 24]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert metrics["train_samples_per_s"] > 0 and "probe_r2" in metrics["final"]
    assert read_checkpoint_config(root / "exported")[1]["period_s"] == pytest.approx(0.1)  # the toy bags' step
    assert (root / "run" / "loss_curve.png").stat().st_size > 1000
    # The plot shows every recorded term and the total, train and validation, not the schedule.
    terms = loss_terms(history)
    assert {"train_loss", "val_loss", "train_rollout", "val_teacher_forcing"} <= set(terms)
    assert set(terms) == {k for k in history[0] if k not in ("step", "lr")}
    model = load_checkpoint(root / "exported")
    assert model.config.joint_names == ("joint1", "joint2", "joint3")
    # the state readout is fitted after the last stage and kept with the model, its held-out errors in the record
    assert model.config.state_readout and model.readout is not None and float(model.readout.weights.abs().sum()) > 0
    assert all(np.isfinite(metrics["final"][f"read_rmse_{name}"]) for name in model.config.joint_names)
    # The record says where it was made: across CPUs the same run lands elsewhere.
    machine = read_checkpoint_config(root / "exported")[1]["machine"]
    assert machine["torch"] == torch.__version__ and machine["processes"] == 1
    assert machine["threads"] == torch.get_num_threads() and machine["cpu_capability"]

    # Resume continues from step 24 with the saved optimiser and history.
    assert main(_args(root, "run", "--steps", "28", "--resume")) == 0
    resumed = json.loads((root / "run" / "metrics.json").read_text())
    assert [h["step"] for h in resumed["history"]] == [8, 16, 24, 28]


def test_frozen_encoder_mode_trains_the_predictor_only(setup):
    root = setup
    if not (root / "exported").is_dir():
        pytest.skip("needs the exported checkpoint of test_short_run_lowers_loss_and_resumes")
    (root / "frozen.yaml").write_text(yaml.safe_dump({"train": {**TRAIN, "mode": "frozen_encoder"}}))
    args = _args(root, "frozen", "--steps", "4", "--init", str(root / "exported"))
    args[args.index("--config") + 1] = str(root / "frozen.yaml")
    assert main(args) == 0
    before, after = load_checkpoint(root / "exported"), load_checkpoint(root / "frozen" / "checkpoint")
    for key, value in before.encoder.state_dict().items():
        assert torch.equal(value, after.encoder.state_dict()[key]), key
    # The standardisation was calibrated once on the same training frames, so the latent is unchanged.
    for name in ("running_mean", "running_var"):
        assert torch.allclose(getattr(before.latent_norm, name), getattr(after.latent_norm, name), atol=1e-5), name
    assert not torch.equal(before.predictor.predictor_proj.weight, after.predictor.predictor_proj.weight)
    # The checkpoint records the one it started from, with that one's own record (stages chain).
    metadata = read_checkpoint_config(root / "frozen" / "checkpoint")[1]
    assert metadata["train"]["mode"] == "frozen_encoder"
    assert metadata["init"]["path"] == str(root / "exported") and metadata["init"]["train"]["mode"] == "joint"
    # Without a pretrained encoder the mode is refused with the reason.
    args = _args(root, "frozen2", "--steps", "4")
    args[args.index("--config") + 1] = str(root / "frozen.yaml")
    with pytest.raises(ValueError, match="frozen_encoder needs --init"):
        main(args)


def test_a_proprio_stage_pretrains_the_encoder_for_a_joint_stage(setup):
    root = setup
    (root / "proprio.yaml").write_text(yaml.safe_dump({"train": {**TRAIN, "mode": "proprio", "batch_size": 16}}))
    args = _args(root, "proprio", "--steps", "24")
    args[args.index("--config") + 1] = str(root / "proprio.yaml")
    assert main(args) == 0
    metrics = json.loads((root / "proprio" / "metrics.json").read_text())
    history = metrics["history"]
    assert history[-1]["train_proprio"] < 0.5 * history[0]["train_proprio"]  # (one toy validation episode)
    # No predictor was trained, so no prediction errors are reported; the probe is.
    assert "h1_error_ratio" not in metrics["final"] and "probe_r2" in metrics["final"]
    torch.manual_seed(TRAIN["seed"])
    untrained = WorldModel(tiny_config())
    trained = load_checkpoint(root / "proprio" / "checkpoint")
    for key, value in untrained.predictor.state_dict().items():
        assert torch.equal(value, trained.predictor.state_dict()[key]), key
    assert not torch.equal(untrained.encoder.blocks[0].attn.qkv.weight, trained.encoder.blocks[0].attn.qkv.weight)
    # A joint stage starts from it and records it.
    args = _args(root, "after_proprio", "--steps", "4", "--init", str(root / "proprio" / "checkpoint"))
    assert main(args) == 0
    assert read_checkpoint_config(root / "after_proprio" / "checkpoint")[1]["init"]["train"]["mode"] == "proprio"


def test_sequences_train_every_window_inside_them(setup):
    root = setup
    (root / "sequence.yaml").write_text(yaml.safe_dump({"train": {**TRAIN, "batch_size": 2, "sequence_steps": 10}}))
    args = _args(root, "sequence", "--steps", "8")
    args[args.index("--config") + 1] = str(root / "sequence.yaml")
    assert main(args) == 0
    metrics = json.loads((root / "sequence" / "metrics.json").read_text())
    assert metrics["step"] == 8 and metrics["history"][-1]["val_rollout"] > 0
    assert read_checkpoint_config(root / "sequence" / "checkpoint")[1]["train"]["sequence_steps"] == 10
    # Teacher forcing runs the predictor over the whole sequence: longer than its time table is refused.
    (root / "long.yaml").write_text(yaml.safe_dump({"train": {**TRAIN, "sequence_steps": 14}}))
    args[args.index("--config") + 1] = str(root / "long.yaml")
    with pytest.raises(ValueError, match="sequence_steps=14: teacher forcing over it needs predictor.max_steps >= 13"):
        main(args)


def test_resume_without_state_is_refused(setup):
    with pytest.raises(FileNotFoundError, match="resume.pt does not exist"):
        main(_args(setup, "fresh", "--steps", "5", "--resume"))


def test_two_process_torchrun_on_cpu(setup):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "jepa_wm.command_line",
               *_args(setup, "ddp", "--steps", "4", "--device", "cpu")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((setup / "ddp" / "metrics.json").read_text())
    assert metrics["step"] == 4
    state = torch.load(setup / "ddp" / "resume.pt", weights_only=True)
    assert len(state["generator"]) == 2  # one sampling stream per process
    machine = read_checkpoint_config(setup / "ddp" / "checkpoint")[1]["machine"]
    assert machine["processes"] == 2 and machine["threads"] == max(1, (os.cpu_count() or 1) // 2)


def test_a_recipe_runs_its_stages_in_order_each_from_the_last_and_resumes_past_finished_ones(setup, capsys):
    root = setup
    (root / "s_proprio.yaml").write_text(yaml.safe_dump({"train": {**TRAIN, "mode": "proprio", "steps": 8}}))
    (root / "s_joint.yaml").write_text(yaml.safe_dump({"train": {**TRAIN, "steps": 8}}))
    (root / "recipe.yaml").write_text(yaml.safe_dump({"stages": ["s_proprio.yaml", "s_joint.yaml"]}))
    args = _args(root, "recipe", "--export", str(root / "recipe_export"))
    args[args.index("--config") + 1] = str(root / "recipe.yaml")
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "stage 1/2 s_proprio: proprio, 8 steps" in printed and "stage 2/2 s_joint: joint, 8 steps" in printed
    # The verdict ends the run, with each check (a toy model trained for 16 steps is not ready).
    assert "NOT READY" in printed and "beats copy-last" in printed and "sees every joint" in printed
    record = read_checkpoint_config(root / "recipe" / "checkpoint")[1]
    assert record["train"]["mode"] == "joint" and record["init"]["train"]["mode"] == "proprio"
    assert record["init"]["path"] == str(root / "recipe" / "1_s_proprio" / "checkpoint")
    assert read_checkpoint_config(root / "recipe_export")[1] == record
    # Resumed, a finished stage is not trained again.
    assert main([*args, "--resume"]) == 0
    assert "stage 1/2 s_proprio: done already" in capsys.readouterr().out
    # --steps would be ambiguous over several stages.
    with pytest.raises(ConfigError, match="has 2 stages; give one stage's file as --config"):
        main([*args, "--steps", "3"])


def test_the_default_config_is_the_shipped_recipe_and_make_checkpoint_runs_it():
    """`jepa-ros train` with no --config trains the recipe `make checkpoint` runs, for any robot preset."""
    from jepa_wm.config import package_share
    from jepa_wm.training.command import add_arguments, load_stages

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = Path(parser.parse_args(["--bags", "b", "--out", "o"]).config)
    assert default == package_share() / "config" / "training" / "recipe.yaml"
    assert [(name, config.mode) for name, config in load_stages(default)] == [
        ("proprio", "proprio"), ("joint", "joint"), ("predictor", "frozen_encoder")]
    for _, config in load_stages(default):  # nothing in the recipe is sized for one robot's joints
        assert not config.proprio_joint_weights and not config.inverse_dynamics_joint_weights
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = makefile.split("\ncheckpoint:")[1].split("\n\n")[0].replace("\\\n", " ")  # the rule, to its blank line
    trains = re.findall(r"jepa-ros train ([^\n]*)", recipe)
    assert len(trains) == 1 and "--config" not in trains[0] and "--robot $(ROBOT)" in trains[0]


def test_the_embedded_checkpoint_was_made_by_the_shipped_recipes_stages():
    """The default model's metadata chains the recipe's three stages, each with its stage file's settings and the
    preset's readout weights (it was trained stage by stage, each on its own choice of the exploration sets)."""
    from jepa_wm.config import package_share
    from jepa_wm.models.checkpoint import checkpoint_robot
    from jepa_wm.training.command import load_stages

    def as_made(train: dict) -> TrainConfig:  # the recorded settings; fields added since take their defaults
        return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in train.items()})

    share = package_share()
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    threads = int(re.search(r"^TRAIN_THREADS \?= (\d+)$", makefile, re.MULTILINE)[1])
    default = share / "checkpoints" / "default"
    assert checkpoint_robot(default) == "jepa_arm"
    record = read_checkpoint_config(default)[1]
    weights = tuple(float(w) for w in load_robot("jepa_arm").readout_weights)
    for _, stage in reversed(load_stages(share / "config" / "training" / "recipe.yaml")):
        assert record["machine"]["threads"] == threads
        expected = stage if stage.mode == "frozen_encoder" else dataclasses.replace(stage, proprio_joint_weights=weights)
        assert as_made(record["train"]) == expected
        record = record.get("init")
    assert record is None  # the first stage started from scratch


def test_the_action_scale_comes_from_the_recorded_actions(setup):
    from jepa_wm.training.command import action_scale_of

    class Recorded:
        def __init__(self, actions):
            self.actions = np.asarray(actions, dtype=np.float32)

    rng = np.random.default_rng(0)
    assert action_scale_of([Recorded(rng.uniform(-0.1, 0.1, (500, 6)))]) == pytest.approx(0.1)
    assert action_scale_of([Recorded(rng.uniform(-0.14, 0.14, (500, 2)))]) == pytest.approx(0.15)
    assert action_scale_of([Recorded(rng.uniform(-0.6, 0.6, (500, 2)))]) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="the arm never moved"):
        action_scale_of([Recorded(np.zeros((10, 2)))])
    # Stored with the model, measured on the bags it was trained on.
    assert load_checkpoint(setup / "exported").config.action_scale == pytest.approx(
        action_scale_of([Recorded(np.concatenate([e.actions for e in read_episodes([setup / "bags"])]))]))


@pytest.mark.parametrize("name", ["train", "finetune", "predictor", "train_fast", "proprio", "joint"])
def test_shipped_training_configs_load(name):
    from jepa_wm.config import TrainConfig, load_yaml, package_share

    config = load_yaml(package_share() / "config" / "training" / f"{name}.yaml", TrainConfig, "train")
    assert config.mode == {"predictor": "frozen_encoder", "proprio": "proprio"}.get(name, "joint")
    if name in ("train_fast", "joint"):  # eight episode pairings a frame
        assert config.inverse_dynamics_pairs == "batch" and config.inverse_dynamics_batch_shifts == 8
    if name == "joint":  # the default's second stage: a smooth latent, the joint readout kept
        assert config.smoothness_weight > 0 and config.proprio_weight > 0


def test_the_learning_rate_warms_up_then_decays_to_a_tenth_stays_at_its_peak_or_ends_with_a_decay_to_zero():
    cosine = TrainConfig(steps=100, warmup_steps=10, learning_rate=1e-3)
    assert learning_rate(0, cosine) == pytest.approx(1e-4)
    assert learning_rate(10, cosine) == pytest.approx(1e-3)
    assert learning_rate(55, cosine) == pytest.approx(0.55e-3)
    assert learning_rate(100, cosine) == pytest.approx(1e-4)
    constant = dataclasses.replace(cosine, lr_schedule="constant")
    assert learning_rate(0, constant) == pytest.approx(1e-4)
    assert [learning_rate(s, constant) for s in (10, 55, 100)] == [1e-3] * 3
    wsd = dataclasses.replace(cosine, lr_schedule="wsd", lr_decay_fraction=0.2)  # decays over steps 80..100
    assert [learning_rate(s, wsd) for s in (10, 55, 80)] == [1e-3] * 3
    assert learning_rate(90, wsd) == pytest.approx(0.5e-3)
    assert learning_rate(99, wsd) == pytest.approx(0.05e-3)
    with pytest.raises(ValueError, match="lr_schedule='step': expected 'cosine', 'constant' or 'wsd'"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match=r"lr_decay_fraction=1.5: expected a fraction of the steps in \(0, 1\]"):
        TrainConfig(lr_schedule="wsd", lr_decay_fraction=1.5)


def test_training_stops_at_the_first_non_finite_loss_naming_step_and_episodes(setup, capsys):
    # a run that diverged trained every step at loss=nan, wrote its files, then failed in an svd
    root = setup
    (root / "diverging.yaml").write_text(yaml.safe_dump({"train": {**TRAIN, "learning_rate": 1e30}}))
    args = ["train", "--bags", str(root / "bags"), "--config", str(root / "diverging.yaml"),
            "--model-config", str(root / "model.yaml"), "--out", str(root / "diverging"), "--steps", "24"]
    assert console_main(args) == 2
    error = capsys.readouterr().err
    match = re.search(r"step (\d+): the loss is (nan|inf).*the batch came from \d+ episodes: .*episode_\d+", error)
    assert match, error
    assert int(match.group(1)) < 8  # the first non-finite loss, long before the run's end
    assert not (root / "diverging" / "checkpoint").exists()


def test_calibrate_fits_a_state_readout_on_bags_into_a_checkpoint_trained_without_one(setup, capsys):
    """A checkpoint made before the readout was fitted (or imported) gets one from exploration bags."""
    from jepa_wm.calibration import add_arguments, fit_readout_on_bags
    from jepa_wm.data import read_episodes
    from jepa_wm.models.checkpoint import save_checkpoint

    folder = save_checkpoint(WorldModel(tiny_config()).eval(), setup / "without_readout", {"period_s": 0.1})
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(folder), "--bags", str(setup / "bags")])
    model = load_checkpoint(folder).eval()
    assert model.readout is None
    fit_readout_on_bags(model, folder, args, read_episodes(args.bags, image_size=model.config.encoder.image_size), None)
    loaded = load_checkpoint(folder)
    assert loaded.config.state_readout and float(loaded.readout.weights.abs().sum()) > 0
    record = read_checkpoint_config(folder)[1]
    assert record["period_s"] == 0.1 and record["readout"]["bags"] == [str(setup / "bags")]  # the record kept
    assert "state readout fitted on 3 episodes" in capsys.readouterr().out
    with torch.no_grad():  # reads the same states the model's own readout does
        frame = torch.from_numpy(np.zeros((32, 32, 3), np.uint8))[None]
        torch.testing.assert_close(loaded.readout(loaded.encode(frame)), model.readout(model.encode(frame)))
