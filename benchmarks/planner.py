"""Latent planning speed: CEM and MPPI with the default configs, against this CPU's peak.

Times encode + plan as LatentMPC runs them each control tick (warm-started), counts the
useful FLOPs of the planner's rollouts with torch.utils.flop_counter, and measures the
machine's fp32 matmul peak in the same run. Last line: one JSON object.

    python benchmarks/planner.py [--repeats 5] [--threads 1] [--checkpoint checkpoints/default]

The model is the checkpoint if it exists, else config/training/world_model.yaml's architecture with
random weights (timing does not depend on the weights).

Each planner runs eagerly and as TorchScript graphs (planner.rollout_graph), and MPPI once more
beside a thread that holds the GIL like a node's subscription callbacks: that is where the graphs,
which run without the GIL, make the difference. Then world_model_node's planner (config/nodes/
world_model_node.yaml) with as many candidates as replan within its planner.budget_ms here (``node_*``).

Planning runs on ``--threads`` torch threads (1, as world_model_node runs by default: on a
shared 2-core CPU one thread plans faster than two); the matmul peak uses every core.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from jepa_wm.config import PlannerConfig, WorldModelConfig, load_yaml, node_planner, package_share
from jepa_wm.controller import fewer_samples
from jepa_wm.models import WorldModel, load_checkpoint
from jepa_wm.models.checkpoint import default_checkpoint
from jepa_wm.planning import latent_goal_cost, make_generator, plan, shift_plan
from jepa_wm.runtime import keep_freed_memory, resolve_precision, rollout_factory, rollout_model, samples_within


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of a size x size matmul: this machine's practical peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm up the BLAS threads
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


@contextlib.contextmanager
def python_callbacks(rate_hz: float = 115.0, hold_ms: float = 0.5):
    """A thread that holds the GIL ``hold_ms`` at ``rate_hz``, as a node's subscription callbacks do.

    world_model_node receives joint states at 100 Hz and camera frames at 15 Hz; each callback runs
    Python (rclpy's executor and the callback itself) while the planner's thread waits for the GIL.
    """
    stop = threading.Event()

    def callbacks() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            while time.perf_counter() - started < hold_ms * 1e-3:
                pass
            stop.wait(1.0 / rate_hz)

    thread = threading.Thread(target=callbacks, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def time_planner(model: WorldModel, config: PlannerConfig, repeats: int) -> dict[str, float]:
    """Median encode / plan times (ms) of warm-started ticks, and the FLOPs of one plan.

    Frames are encoded in float32; rollouts run on a copy of the model in ``config.precision``,
    as LatentMPC does.
    """
    generator = make_generator(config)
    dtype = getattr(torch, config.precision)
    planning_model = rollout_model(model, config.precision)
    rollout_fn = rollout_factory(planning_model, config.rollout_graph)
    size = model.config.encoder.image_size
    frames = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    goal_latent = model.encode(frames[:1])[0]
    cost = latent_goal_cost(goal_latent, config)
    joints = torch.zeros(model.config.action_dim)
    action_dim = model.config.action_dim

    def tick(warm_start):
        started = time.perf_counter()
        latent = model.encode(frames[1:])[0]
        encoded = time.perf_counter()
        result = plan(rollout_fn(latent.to(dtype), joints), cost, config, action_dim, warm_start, generator)
        return result, (encoded - started) * 1e3, (time.perf_counter() - encoded) * 1e3

    warm_start = shift_plan(tick(None)[0].actions)  # first calls pay one-off costs (allocation, tracing)
    warm_start = shift_plan(tick(warm_start)[0].actions)
    encode_ms, plan_ms = [], []
    for _ in tqdm(range(repeats), desc=f"{config.method} {config.precision}", file=sys.stderr, leave=False):
        result, encoded, planned = tick(warm_start)
        warm_start = shift_plan(result.actions)
        encode_ms.append(encoded)
        plan_ms.append(planned)
    latent = model.encode(frames[1:])[0]
    with FlopCounterMode(display=False) as counter:
        plan(planning_model.rollout_fn(latent.to(dtype), joints), cost, config, action_dim, warm_start, generator)
    return {
        "encode_ms": statistics.median(encode_ms),
        "plan_ms": statistics.median(plan_ms),
        "plan_flops": float(counter.get_total_flops()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed planning ticks per method")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while planning (0: torch default)")
    parser.add_argument("--checkpoint", type=Path, default=default_checkpoint())
    args = parser.parse_args()
    torch.manual_seed(0)
    keep_freed_memory()  # as world_model_node does
    all_threads = torch.get_num_threads()
    architecture = package_share() / "config" / "training" / "world_model.yaml"
    if (args.checkpoint / "config.json").is_file():
        model, source = load_checkpoint(args.checkpoint), str(args.checkpoint)
    elif architecture.is_file():  # random weights time the same as trained ones
        config = load_yaml(architecture, WorldModelConfig, "world_model")
        model, source = WorldModel(config).eval(), f"random weights, {architecture.name}"
    else:
        model, source = WorldModel(WorldModelConfig()).eval(), "random weights, WorldModelConfig()"
    peak = matmul_gflops()
    base = PlannerConfig()
    torch.set_num_threads(args.threads or all_threads)
    results = {
        (method, precision, graph): time_planner(
            model, dataclasses.replace(base, method=method, precision=precision, rollout_graph=graph), args.repeats
        )
        for graph in ("eager", "torchscript")
        for precision in ("float32", "bfloat16")
        for method in ("cem", "mppi")
    }
    # each with the switch interval world_model_node would use for it (gil_switch_interval)
    for graph, switch_interval in (("eager", 0.0002), ("torchscript", 0.005)):
        sys.setswitchinterval(switch_interval)
        with python_callbacks():
            config = dataclasses.replace(base, method="mppi", rollout_graph=graph)
            results["mppi", "callbacks", graph] = time_planner(model, config, args.repeats)
    # world_model_node's planner: as many candidates as replan within its planner.budget_ms here
    node = node_planner({"precision": resolve_precision(node_planner().precision, "cpu")})
    budgeted: dict[int, dict[str, float]] = {}

    def replan_ms(samples: int) -> float:
        budgeted[samples] = time_planner(model, fewer_samples(node, samples), args.repeats)
        return budgeted[samples]["encode_ms"] + budgeted[samples]["plan_ms"]

    node_samples, node_replan_ms = samples_within(node.budget_ms, replan_ms, node.num_samples)
    node_timing = budgeted[node_samples]
    planning_threads = torch.get_num_threads()
    torch.set_num_threads(all_threads)
    peak = max(peak, matmul_gflops())  # measured before and after: the machine is shared
    cem, mppi = results["cem", "float32", "eager"], results["mppi", "float32", "eager"]
    cem_bf16, mppi_bf16 = results["cem", "bfloat16", "eager"], results["mppi", "bfloat16", "eager"]
    traced = {key[:2]: value["plan_ms"] for key, value in results.items() if key[2] == "torchscript"}
    busy_eager, busy_traced = results["mppi", "callbacks", "eager"], results["mppi", "callbacks", "torchscript"]
    planner_gflops = cem["plan_flops"] / (cem["plan_ms"] * 1e-3) / 1e9
    print(f"model: {source}; planner: {base.num_samples} samples x {base.iterations} iterations x horizon "
          f"{base.horizon}; planning threads: {planning_threads}, matmul threads: {all_threads}", file=sys.stderr)
    print(json.dumps({
        "cem_plan_ms": round(cem["plan_ms"], 2),
        "mppi_plan_ms": round(mppi["plan_ms"], 2),
        "encode_ms": round(cem["encode_ms"], 2),
        "cem_replan_ms": round(cem["encode_ms"] + cem["plan_ms"], 2),
        "mppi_replan_ms": round(mppi["encode_ms"] + mppi["plan_ms"], 2),
        # planner.precision=bfloat16 (auto's choice on CPUs with AVX-512 BF16 or AMX), in the same run
        "cem_plan_ms_bfloat16": round(cem_bf16["plan_ms"], 2),
        "mppi_plan_ms_bfloat16": round(mppi_bf16["plan_ms"], 2),
        "bfloat16_speedup": round(cem["plan_ms"] / cem_bf16["plan_ms"], 2),
        # planner.rollout_graph=torchscript, in the same run
        "cem_plan_ms_torchscript": round(traced["cem", "float32"], 2),
        "mppi_plan_ms_torchscript": round(traced["mppi", "float32"], 2),
        "mppi_plan_ms_torchscript_bfloat16": round(traced["mppi", "bfloat16"], 2),
        "torchscript_speedup": round(mppi["plan_ms"] / traced["mppi", "float32"], 2),
        # with a thread holding the GIL like a node's subscription callbacks (python_callbacks)
        "mppi_plan_ms_callbacks_eager": round(busy_eager["plan_ms"], 2),
        "mppi_plan_ms_callbacks_torchscript": round(busy_traced["plan_ms"], 2),
        "torchscript_speedup_callbacks": round(busy_eager["plan_ms"] / busy_traced["plan_ms"], 2),
        "plan_gflop": round(cem["plan_flops"] / 1e9, 3),
        "matmul_gflops": round(peak, 1),
        "planner_gflops": round(planner_gflops, 1),
        "mppi_planner_gflops": round(mppi["plan_flops"] / (mppi["plan_ms"] * 1e-3) / 1e9, 1),
        "fraction_of_peak": round(planner_gflops / peak, 3),
        # world_model_node's planner (TorchScript, planner.precision auto) within its planner.budget_ms here
        "node_budget_ms": node.budget_ms,
        "node_num_samples": node_samples,
        "node_replan_ms": round(node_replan_ms, 2),
        "node_fraction_of_peak": round(node_timing["plan_flops"] / (node_timing["plan_ms"] * 1e-3) / 1e9 / peak, 3),
        # what world_model_node's planner.precision=auto runs on this machine
        "auto_precision": resolve_precision("auto", "cpu"),
        # the instructions torch dispatches to (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 on an
        # AVX-512 CPU leaves out the AVX-512 kernels; it plans faster than a real AVX2 CPU does)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "model": source,
        "planning_threads": planning_threads,
        "matmul_threads": all_threads,
    }))


if __name__ == "__main__":
    main()
