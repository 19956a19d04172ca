"""Planning cost of V-JEPA 2-AC's architecture on this machine: a ViT-L-shaped encoder with the AC predictor.

Random weights in the published shapes (config/models/vjepa2_ac_vitl.yaml: 256 px frames, 16 px
patches, tubelet 2, RoPE; predictor 1024 wide, 24 blocks, every one of the 256 patch tokens, 7-D
end-effector actions). Two planner settings, both through the package's planner and rollouts:

* published: CEM as V-JEPA 2-AC plans, L1 energy to the goal latent, horizon 1, 800 samples,
  10 elites, 10 iterations, momentum 0.15, actions within 5 cm (action_scale 1: metres);
* cached: this package's way (MPPI, horizon 4, 64 samples, 3 iterations, warm start), each
  imagined step feeding only its own tokens through the key/value cache.

A plan with the published settings takes tens of minutes on a 2-core CPU, so each setting's plan
is run for real on ``--samples`` candidates and one iteration, timed, and scaled by its number of
candidates and iterations (candidates are independent rows of one batch: the cost is linear in
them once the batch fills the matrix units; the run checks this at half the samples and prints
both per-candidate times). The last line is one JSON object with ``plan_ms`` per setting
(scaled), what was measured, ``encode_ms``, the device and the parameter counts.

    python benchmarks/vjepa2_ac.py [--samples 8] [--device cpu] [--precision float32]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import torch
from tqdm import tqdm

from jepa_wm.config import PlannerConfig, WorldModelConfig, load_yaml, package_share
from jepa_wm.models import WorldModel
from jepa_wm.planning import latent_goal_cost, make_generator, plan
from jepa_wm.runtime import rollout_model

SETTINGS = {
    "published": PlannerConfig(method="cem", horizon=1, num_samples=800, iterations=10, num_elites=10,
                               init_std=0.05, min_std=0.001, max_std=0.05, action_bound=0.05,
                               momentum_mean=0.15, momentum_std=0.15, cost="l1"),
    "cached": PlannerConfig(method="mppi", horizon=4, num_samples=64, iterations=3, num_elites=16,
                            init_std=0.05, min_std=0.001, max_std=0.05, action_bound=0.05, cost="l1"),
}


def device_name(device: torch.device) -> str:
    """What ran it, in words: the GPU's name, or the CPU's model and its cores."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    isa = "AVX-512 BF16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "?"
    return f"{model} ({torch.get_num_threads()} threads, {isa})"


def timed_plan(model: WorldModel, rollout_net: WorldModel, latent: torch.Tensor, goal: torch.Tensor,
               state: torch.Tensor, config: PlannerConfig, device: torch.device) -> float:
    """Milliseconds of one plan (rollout_fn from the observed step, then the planner) with ``config``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    rollout = rollout_net.rollout_fn(latent, state)
    plan(rollout, latent_goal_cost(goal, config), config, model.config.action_dim, None, make_generator(config, device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="candidates per timed plan (scaled to each setting's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    device = torch.device(args.device)
    config = load_yaml(package_share() / "config" / "models" / "vjepa2_ac_vitl.yaml", WorldModelConfig, "world_model")
    config = dataclasses.replace(config, joint_names=tuple(f"fr3_joint{i}" for i in range(1, 8)))
    torch.manual_seed(0)
    model = WorldModel(config).to(device).eval()
    rollouts = rollout_model(model, args.precision)
    counts = {"encoder_parameters": sum(p.numel() for p in model.encoder.parameters()),
              "predictor_parameters": sum(p.numel() for p in model.predictor.parameters())}
    print(f"{device_name(device)}; encoder {counts['encoder_parameters'] / 1e6:.0f} M parameters, "
          f"predictor {counts['predictor_parameters'] / 1e6:.0f} M; rollouts in {args.precision}")

    frames = torch.randint(0, 256, (2, 256, 256, 3), dtype=torch.uint8, device=device)
    model.encode(frames[:1])  # warm-up
    started = time.perf_counter()
    latents = model.encode(frames)
    encode_ms = (time.perf_counter() - started) * 1e3 / 2
    dtype = getattr(torch, args.precision)
    latent, goal = latents[0].to(dtype), latents[1]
    state = torch.tensor([0.45, 0.0, 0.35, 3.14, 0.0, 0.0, 0.0], device=device, dtype=dtype)

    results: dict[str, dict[str, float]] = {}
    for name, setting in tqdm(SETTINGS.items(), desc="settings"):
        measured = {}
        for samples in (args.samples // 2, args.samples):
            trial = dataclasses.replace(setting, num_samples=samples, iterations=1,
                                        num_elites=min(setting.num_elites, samples))
            timed_plan(model, rollouts, latent, goal, state, trial, device)  # warm-up at this shape
            measured[samples] = timed_plan(model, rollouts, latent, goal, state, trial, device)
        per_candidate = measured[args.samples] / args.samples
        plan_ms = per_candidate * setting.num_samples * setting.iterations
        results[name] = {"plan_ms": round(plan_ms, 1), "measured_ms": round(measured[args.samples], 1),
                         "measured_samples": args.samples,
                         "ms_per_candidate_at_half": round(measured[args.samples // 2] / (args.samples // 2), 1),
                         "ms_per_candidate": round(per_candidate, 1),
                         "samples": setting.num_samples, "iterations": setting.iterations, "horizon": setting.horizon}
        print(f"{name}: {setting.method} horizon {setting.horizon}, {setting.num_samples} samples x "
              f"{setting.iterations} iterations: {measured[args.samples]:.0f} ms for {args.samples} candidates, 1 "
              f"iteration ({per_candidate:.0f} ms per candidate, {results[name]['ms_per_candidate_at_half']:.0f} at "
              f"{args.samples // 2}) -> {plan_ms / 1e3:.1f} s per plan")
    print(json.dumps({"plan_ms": {name: r["plan_ms"] for name, r in results.items()},
                      "plan_ms_scaled_from": {name: {k: v for k, v in r.items() if k != "plan_ms"}
                                              for name, r in results.items()},
                      "encode_ms": round(encode_ms, 1), "device": device_name(device),
                      "precision": args.precision, **counts}))


if __name__ == "__main__":
    main()
