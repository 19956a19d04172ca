"""Checkpoints: our safetensors format round-trips; V-JEPA 2 layouts load; mismatches are named."""

import dataclasses
import json
import math
import time

import numpy as np
import pytest
import torch

from jepa_wm.config import ConfigError, EncoderConfig, PredictorConfig, WorldModelConfig
from jepa_wm.models.checkpoint import (
    CheckpointError,
    explored_joint_range,
    load_checkpoint,
    save_checkpoint,
)
from jepa_wm.models.vjepa2_files import load_vjepa2
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


def ac_config(**encoder) -> WorldModelConfig:
    """A tiny V-JEPA 2-AC-shaped model: video tubelet, RoPE encoder, the published predictor, 7-D actions."""
    return WorldModelConfig(
        encoder=EncoderConfig(**{"image_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 1, "num_heads": 2,
                                 "use_rope": True, "tubelet_size": 2, **encoder}),
        predictor=PredictorConfig(embed_dim=36, depth=1, num_heads=2, latent_grid=4, variant="vjepa2_ac"),
        joint_names=tuple(f"j{i}" for i in range(6)), action_space="end_effector",
    )


def _vjepa2_layout(config: WorldModelConfig, frames: int = 64) -> dict:
    """An official-style checkpoint: DDP/backbone prefixes, a clip-sized pos_embed, a 2-AC predictor."""
    reference = WorldModel(config)
    encoder = {f"module.backbone.{k}": v for k, v in reference.encoder.state_dict().items()}
    side = config.encoder.grid_size
    encoder["module.backbone.pos_embed"] = torch.randn(1, frames // 2 * side * side, config.encoder.embed_dim)
    predictor = {f"module.{k}": v for k, v in reference.predictor.state_dict().items()}
    return {"encoder": encoder, "predictor": predictor, "epoch": 3}, reference


def test_vjepa2_ac_layout_loads_whole_into_the_published_predictor(tmp_path):
    config = ac_config()
    checkpoint, reference = _vjepa2_layout(config)
    torch.save(checkpoint, tmp_path / "vjepa2-ac.pt")
    model = load_vjepa2(tmp_path / "vjepa2-ac.pt", config).eval()  # RoPE: the released pos_embed is left out
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    assert torch.equal(model.encode(frames), reference.eval().encode(frames))
    for key, value in reference.predictor.state_dict().items():
        assert torch.equal(model.predictor.state_dict()[key], value), key


def test_an_ac_predictor_is_refused_by_the_own_predictor_and_the_encoder_alone_loads(tmp_path):
    config = ac_config()
    checkpoint, reference = _vjepa2_layout(config)
    torch.save(checkpoint, tmp_path / "vjepa2-ac.pt")
    own = dataclasses.replace(config, predictor=PredictorConfig(embed_dim=36, depth=1, num_heads=2, latent_grid=2))
    with pytest.raises(CheckpointError, match=r"its predictor is V-JEPA 2-AC's.*variant: vjepa2_ac.*--init-parts encoder"):
        load_vjepa2(tmp_path / "vjepa2-ac.pt", own)
    joints = dataclasses.replace(config, action_space="joint", joint_names=tuple(f"j{i}" for i in range(7)))
    with pytest.raises(CheckpointError, match=r"trained on V-JEPA 2-AC's 7-D end-effector poses.*action_space: end_effector"):
        load_vjepa2(tmp_path / "vjepa2-ac.pt", joints)  # seven joints fit its shapes, not its meaning
    for target in (own, joints):
        model = load_vjepa2(tmp_path / "vjepa2-ac.pt", target, parts="encoder").eval()
        assert torch.equal(model.encoder.patch_embed.proj.weight, reference.encoder.patch_embed.proj.weight)


def test_a_video_tubelet_folds_into_an_image_encoder_exactly(tmp_path):
    config = ac_config()
    checkpoint, reference = _vjepa2_layout(config)
    torch.save(checkpoint, tmp_path / "vjepa2.pt")
    image = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, tubelet_size=1))
    model = load_vjepa2(tmp_path / "vjepa2.pt", image).eval()
    assert model.encoder.patch_embed.proj.weight.shape == (48, 3, 8, 8)
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    # Summing the tubelet kernel equals the video model on a still image repeated over the tubelet.
    assert torch.allclose(model.encode(frames), reference.eval().encode(frames), atol=1e-5)


def test_an_absolute_position_table_is_interpolated_to_another_image_size(tmp_path):
    trained = ac_config(use_rope=False, tubelet_size=1)  # 4x4 grid at 32 px
    checkpoint, reference = _vjepa2_layout(trained, frames=2)
    table = reference.encoder.pos_embed.detach()
    checkpoint["encoder"]["module.backbone.pos_embed"] = table.repeat(1, 3, 1)  # three frames' rows
    torch.save(checkpoint, tmp_path / "abs.pt")
    wider = dataclasses.replace(trained, encoder=dataclasses.replace(trained.encoder, image_size=64),
                                predictor=dataclasses.replace(trained.predictor, latent_grid=8))
    model = load_vjepa2(tmp_path / "abs.pt", wider, source_image_size=32)
    grid = table.reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(8, 8), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 64, -1)
    assert torch.allclose(model.encoder.pos_embed, expected)
    assert torch.equal(load_vjepa2(tmp_path / "abs.pt", trained).encoder.pos_embed, table)
    # 48 rows are no whole number of 8x8 grids: the file was trained at another size than the one said
    with pytest.raises(CheckpointError, match=r"pos_embed \(1, 48, 48\) is not a whole number of 8x8 position grids"):
        load_vjepa2(tmp_path / "abs.pt", wider)


def test_vjepa2_rope_encoder_loads_and_mismatch_is_named(tmp_path):
    config = ac_config()
    checkpoint, _ = _vjepa2_layout(config)
    torch.save({"encoder": checkpoint["encoder"]}, tmp_path / "rope.pt")
    load_vjepa2(tmp_path / "rope.pt", config)
    wrong = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, embed_dim=64))
    with pytest.raises(CheckpointError, match=r"patch_embed.proj.weight: checkpoint \(48, 3, 2, 8, 8\) vs model \(64, 3, 2, 8, 8\)"):
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


def official_key_shapes(dim: int, depth: int, hidden: int) -> tuple[dict, dict]:
    """Names and shapes of a released V-JEPA 2-AC file's encoder and predictor, from the published architecture
    (256 px, 16 px patches, tubelet 2, 64-frame position table; predictor 1024 wide, 24 blocks, 7-D actions)."""
    def blocks(prefix: str, width: int, count: int, inner: int) -> dict:
        shapes = {}
        for i in range(count):
            b = f"{prefix}.{i}."
            shapes.update({b + "norm1.weight": (width,), b + "norm1.bias": (width,),
                           b + "attn.qkv.weight": (3 * width, width), b + "attn.qkv.bias": (3 * width,),
                           b + "attn.proj.weight": (width, width), b + "attn.proj.bias": (width,),
                           b + "norm2.weight": (width,), b + "norm2.bias": (width,),
                           b + "mlp.fc1.weight": (inner, width), b + "mlp.fc1.bias": (inner,),
                           b + "mlp.fc2.weight": (width, inner), b + "mlp.fc2.bias": (width,)})
        return shapes
    encoder = {"patch_embed.proj.weight": (dim, 3, 2, 16, 16), "patch_embed.proj.bias": (dim,),
               "pos_embed": (1, 32 * 16 * 16, dim), **blocks("blocks", dim, depth, hidden),
               "norm.weight": (dim,), "norm.bias": (dim,)}
    predictor = {"predictor_embed.weight": (1024, dim), "predictor_embed.bias": (1024,),
                 "action_encoder.weight": (1024, 7), "action_encoder.bias": (1024,),
                 "state_encoder.weight": (1024, 7), "state_encoder.bias": (1024,),
                 "extrinsics_encoder.weight": (1024, 6), "extrinsics_encoder.bias": (1024,),
                 **blocks("predictor_blocks", 1024, 24, 4096),
                 "predictor_norm.weight": (1024,), "predictor_norm.bias": (1024,),
                 "predictor_proj.weight": (dim, 1024), "predictor_proj.bias": (dim,)}
    return encoder, predictor


@pytest.mark.parametrize(("name", "dim", "depth", "hidden"),
                         [("vitl", 1024, 24, 4096), ("vith", 1280, 32, 5120), ("vitg", 1408, 40, 6144)])
def test_the_shipped_vjepa2_configs_fit_the_official_key_sets(name, dim, depth, hidden):
    from jepa_wm.config import load_yaml, package_share
    from jepa_wm.models.checkpoint import check_state_shapes
    from jepa_wm.models.vjepa2_files import encoder_state_from_vjepa2

    config = dataclasses.replace(load_yaml(package_share() / "config" / "models" / f"vjepa2_ac_{name}.yaml",
                                           WorldModelConfig, "world_model"), joint_names=tuple(f"fr3_joint{i}" for i in range(1, 8)))
    encoder_shapes, predictor_shapes = official_key_shapes(dim, depth, hidden)
    with torch.device("meta"):  # the real sizes, nothing allocated
        model = WorldModel(config)
        state = encoder_state_from_vjepa2({f"module.backbone.{k}": torch.empty(s) for k, s in encoder_shapes.items()},
                                          config.encoder, name)
    check_state_shapes(model.encoder, {k: tuple(v.shape) for k, v in state.items()}, f"{name}:encoder")
    check_state_shapes(model.predictor, predictor_shapes, f"{name}:predictor")
    assert sum(p.numel() for p in model.predictor.parameters()) == sum(math.prod(s) for s in predictor_shapes.values())


def test_an_imported_vjepa2_ac_file_plans_for_the_simulated_franka(tmp_path, capsys):
    import yaml

    from jepa_wm.command_line import main
    from jepa_wm.config import PlannerConfig, load_robot, to_dict
    from jepa_wm.controller import LatentMPC
    from jepa_wm.reaching import make_sim

    config = ac_config()
    checkpoint, reference = _vjepa2_layout(config)
    torch.save(checkpoint, tmp_path / "vjepa2-ac.pt")
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"world_model": to_dict(config)}))
    assert main(["import-vjepa2", str(tmp_path / "vjepa2-ac.pt"), "--model-config", str(tmp_path / "model.yaml"),
                 "--robot", "fr3_sim", "--out", str(tmp_path / "imported"), "--period", "0.2"]) == 0
    assert "end_effector actions for fr3_sim" in capsys.readouterr().out
    model = load_checkpoint(tmp_path / "imported")
    for key, value in reference.predictor.state_dict().items():  # the file's weights, unchanged
        assert torch.equal(model.predictor.state_dict()[key], value), key
    robot = load_robot("fr3_sim")
    mpc = LatentMPC.from_checkpoint(tmp_path / "imported", PlannerConfig(num_samples=8, num_elites=4, iterations=1),
                                    robot, hold_at_goal=False)
    sim = make_sim(64, 0, "fr3_sim")
    mpc.set_goal(sim.render())
    out = mpc.step(sim.render(), sim.joint_positions)
    assert out.action.shape == (7,) and out.command.shape == (7,)
    assert np.all(out.command >= robot.joint_lower) and np.all(out.command <= robot.joint_upper)
    with pytest.raises(ConfigError, match="set control_rate to 5.00 Hz"):  # the stored step is checked
        LatentMPC.from_checkpoint(tmp_path / "imported", PlannerConfig(), robot, control_period=0.1)
