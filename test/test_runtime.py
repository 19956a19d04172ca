"""How the model runs on this machine: memory reuse across plans (jepa_wm.runtime)."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
