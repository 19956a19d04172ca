"""How the model runs on this machine: memory reuse across plans, candidates within a time budget (jepa_wm.runtime)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jepa_wm.runtime import FEWEST_SAMPLES, samples_within

# Plans in a fresh process (the malloc settings are process-wide); prints the page faults of one plan.
PLANS = """
import resource, sys, torch
from jepa_wm.config import PlannerConfig, WorldModelConfig
from jepa_wm.models.world_model import WorldModel
from jepa_wm.planning import latent_goal_cost, make_generator, plan
from jepa_wm.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
model = WorldModel(WorldModelConfig()).eval()
config = PlannerConfig()
size = model.config.encoder.image_size
goal, latent = model.encode(torch.zeros(2, size, size, 3, dtype=torch.uint8))
cost = latent_goal_cost(goal, config)
joints = torch.zeros(model.config.action_dim)
def tick():
    plan(model.rollout_fn(latent, joints), cost, config, model.config.action_dim, None, make_generator(config))
tick()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    tick()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""


def page_faults_per_plan(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", PLANS, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_plans_reuse_freed_memory_instead_of_faulting_fresh_pages():
    kept, default = page_faults_per_plan("keep"), page_faults_per_plan("default")
    # glibc by default hands the plan's 0.1-1 MB tensors back to the OS: tens of thousands of faults a plan
    assert default > 1000, default
    assert kept < 0.05 * default, (kept, default)


def test_samples_within_takes_the_most_candidates_that_fit_the_budget():
    timed = []

    def replan_ms(samples: int) -> float:  # a fixed part and a part per candidate, as a plan's time has
        timed.append(samples)
        return 10.0 + 2.0 * samples

    assert samples_within(80.0, replan_ms, 64) == (32, 74.0)  # 35 would fit: the multiple of 8 below
    assert timed == [64, 32]
    assert samples_within(200.0, replan_ms, 64) == (64, 138.0)  # all of them fit
    assert samples_within(60.0, replan_ms, 40) == (24, 58.0)
    # nothing fits: the fewest, and their time says by how much they overrun
    assert samples_within(5.0, replan_ms, 64) == (FEWEST_SAMPLES, 10.0 + 2.0 * FEWEST_SAMPLES)
    assert samples_within(5.0, replan_ms, 12) == (12, 34.0)  # fewer than the fewest asked for: kept
