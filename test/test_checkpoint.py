"""Checkpoints: our safetensors format round-trips; V-JEPA 2 layouts load; mismatches are named."""

import dataclasses
import json
import time

import pytest
import torch

from jepa_wm.config import EncoderConfig, PredictorConfig, WorldModelConfig
from jepa_wm.models.checkpoint import (
    CheckpointError,
    explored_joint_range,
    load_checkpoint,
    load_vjepa2,
    save_checkpoint,
)
from jepa_wm.models.world_model import WorldModel
from wm_fixtures import tiny_config


def test_round_trip_keeps_weights_config_and_metadata(tmp_path):
    model = WorldModel(tiny_config()).eval()
    save_checkpoint(model, tmp_path / "ckpt", {"seed": 7})
    document = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert document["joint_names"] == ["joint1", "joint2", "joint3"]
    assert document["image_size"] == 32 and document["action_scale"] == 0.1
    assert document["metadata"] == {"seed": 7}
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == model.config
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    assert torch.equal(model.encode(frames), loaded.encode(frames))


def test_round_trip_keeps_the_input_blur(tmp_path):
    config = tiny_config()
    config = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, input_blur=0.8))
    model = WorldModel(config).eval()
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config.encoder.input_blur == 0.8
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    assert torch.equal(model.encode(frames), loaded.encode(frames))
    assert not torch.allclose(WorldModel(tiny_config()).encoder.preprocess(frames), loaded.encoder.preprocess(frames))


def test_wrong_architecture_names_keys_and_shapes(tmp_path):
    save_checkpoint(WorldModel(tiny_config()), tmp_path / "ckpt")
    document = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    document["world_model"]["encoder"]["depth"] = 3
    document["world_model"]["predictor"]["embed_dim"] = 16
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "ckpt")
    message = str(error.value)
    assert "missing keys [encoder.blocks.2." in message
    assert "predictor.predictor_embed.weight: checkpoint (32, 32) vs model (16, 32)" in message


def test_bad_config_json_is_refused(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({"format": "jepa_ros.world_model", "world_model": {"encodr": {}}}))
    with pytest.raises(CheckpointError, match="unknown keys \\['encodr'\\]"):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path / "missing")


def _vjepa2_layout(config: WorldModelConfig, tubelet: int = 2, frames: int = 4) -> dict:
    """An official-style checkpoint: video patch embed, DDP/backbone prefixes, 2-AC predictor."""
    reference = WorldModel(config)
    encoder = {}
    for key, value in reference.encoder.state_dict().items():
        if key == "patch_embed.proj.weight":
            value = value.unsqueeze(2).repeat(1, 1, tubelet, 1, 1) / tubelet  # Conv3d over a tubelet
        if key == "pos_embed":
            value = value.repeat(1, frames // tubelet, 1)  # a table for a whole clip
        encoder[f"module.backbone.{key}"] = value
    predictor = {f"module.{k}": v for k, v in reference.predictor.state_dict().items()
                 if k not in ("time_embed", "token_embed")}
    predictor["module.extrinsics_encoder.weight"] = torch.zeros(config.predictor.embed_dim, config.action_dim - 1)
    return {"encoder": encoder, "target_encoder": encoder, "predictor": predictor, "epoch": 3}, reference


def test_vjepa2_state_dict_layout_loads(tmp_path):
    config = tiny_config()
    checkpoint, reference = _vjepa2_layout(config)
    torch.save(checkpoint, tmp_path / "vjepa2.pt")
    model = load_vjepa2(tmp_path / "vjepa2.pt", config).eval()
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    # Summing the tubelet kernel equals the video model on a still image: same latents as the reference.
    assert torch.allclose(model.encode(frames), reference.eval().encode(frames), atol=1e-5)
    assert torch.equal(model.predictor.predictor_proj.weight, reference.predictor.predictor_proj.weight)


def test_vjepa2_rope_encoder_loads_and_mismatch_is_named(tmp_path):
    config = WorldModelConfig(
        encoder=EncoderConfig(image_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=2, use_rope=True),
        predictor=PredictorConfig(embed_dim=32, depth=1, num_heads=2, latent_grid=2),
        joint_names=("a", "b"),
    )
    checkpoint, _ = _vjepa2_layout(config)
    assert not any("pos_embed" in k for k in checkpoint["encoder"])
    torch.save({"encoder": checkpoint["encoder"]}, tmp_path / "rope.pt")
    load_vjepa2(tmp_path / "rope.pt", config)
    wrong = WorldModelConfig(encoder=EncoderConfig(image_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=2,
                                                   use_rope=True), predictor=config.predictor, joint_names=("a", "b"))
    with pytest.raises(CheckpointError, match=r"patch_embed.proj.weight: checkpoint \(48, 3, 8, 8\) vs model \(64, 3, 8, 8\)"):
        load_vjepa2(tmp_path / "rope.pt", wrong)


def _saved(tmp_path, **metadata):
    return save_checkpoint(WorldModel(tiny_config()), tmp_path / "ckpt", metadata)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:500]),
         r"model.safetensors: not a readable safetensors file"),
        (lambda folder: (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40),
         r"model.safetensors: not a readable safetensors file"),
        (lambda folder: (folder / "config.json").write_text("[1, 2, 3]"), r"config.json: holds a JSON list"),
        (lambda folder: (folder / "config.json").write_bytes(b"\xff\xfe{}"), r"config.json: not UTF-8 text"),
    ],
)
def test_a_corrupt_checkpoint_is_refused_in_one_line_naming_the_file(tmp_path, damage, message):
    folder = _saved(tmp_path)
    damage(folder)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


def test_an_architecture_larger_than_its_weights_is_refused_before_anything_is_allocated(tmp_path):
    # a config.json edited to a 100-billion-parameter encoder ran out of memory after 25 s
    folder = _saved(tmp_path)
    document = json.loads((folder / "config.json").read_text())
    document["world_model"]["encoder"].update(embed_dim=65536, depth=2000, num_heads=64)
    (folder / "config.json").write_text(json.dumps(document))
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"model.safetensors does not fit WorldModel: missing keys"):
        load_checkpoint(folder)
    assert time.perf_counter() - started < 20


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    model = WorldModel(tiny_config())
    with torch.no_grad():
        model.encoder.patch_embed.proj.weight[0, 0, 0, 0] = float("nan")
    folder = save_checkpoint(model, tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"non-finite weights in \[encoder.patch_embed.proj.weight"):
        load_checkpoint(folder)


@pytest.mark.parametrize(
    ("explored", "message"),
    [
        ({"lower": [0.5, 0.0, 0.0], "upper": [0.4, 1.0, 1.0]}, r"joint1 \[0.5, 0.4\]; expected finite values"),
        ({"lower": [float("nan"), 0.0, 0.0], "upper": [1.0, 1.0, 1.0]}, r"joint1 \[nan, 1.0\]"),
        ({"lower": [0.0, 0.0], "upper": [1.0, 1.0]}, r"has \(2,\) / \(2,\) values, expected 3"),
        ({"low": [0.0]}, r"expected lists 'lower' and 'upper'"),
    ],
)
def test_a_bad_explored_joint_range_is_refused_naming_the_file_and_joint(tmp_path, explored, message):
    folder = _saved(tmp_path, explored_joint_range=explored)
    with pytest.raises(CheckpointError, match=r"config.json: metadata.explored_joint_range.*" + message):
        explored_joint_range(folder, ("joint1", "joint2", "joint3"))


def test_the_explored_range_of_another_robots_checkpoint_names_both_joint_sets(tmp_path):
    folder = _saved(tmp_path, explored_joint_range={"lower": [0.0] * 3, "upper": [1.0] * 3})
    with pytest.raises(CheckpointError, match=r"joints \['joint1', 'joint2', 'joint3'\] do not match .*\['shoulder'"):
        explored_joint_range(folder, ("shoulder", "elbow"))
    lower, upper = explored_joint_range(folder, ("joint3", "joint1", "joint2"))
    assert lower.tolist() == [0.0] * 3 and upper.tolist() == [1.0] * 3


class _Payload:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_pickle_with_code_is_refused_plainly_naming_the_file(tmp_path, capsys):
    path = tmp_path / "vjepa2.pt"
    torch.save({"encoder": _Payload()}, path)
    with pytest.raises(CheckpointError) as error:
        load_vjepa2(path, tiny_config())
    message = str(error.value)
    assert str(path) in message and "will not load it" in message
    assert "weights_only" not in message  # never suggests disabling the guard
    assert "this ran" not in capsys.readouterr().out
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"vjepa2.pt: not a readable torch file"):
        load_vjepa2(path, tiny_config())
    with pytest.raises(CheckpointError) as error:
        load_vjepa2(path, tiny_config())
    assert "weights_only" not in str(error.value)


def test_metadata_is_updated_in_place_keeping_the_weights(tmp_path):
    from jepa_wm.models.checkpoint import read_checkpoint_config, update_metadata

    folder = _saved(tmp_path, explored_joint_range={"lower": [0.0] * 3, "upper": [1.0] * 3})
    weights = (folder / "model.safetensors").read_bytes()
    update_metadata(folder, reach={"hold_below": 0.04, "resume_above": 0.07})
    metadata = read_checkpoint_config(folder)[1]
    assert metadata["reach"]["hold_below"] == 0.04 and metadata["explored_joint_range"]["upper"] == [1.0] * 3
    assert (folder / "model.safetensors").read_bytes() == weights
    with pytest.raises(CheckpointError, match="no config.json"):
        update_metadata(tmp_path / "missing", reach={})
