# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # InferMax quickstart: env -> heuristic -> agent -> gap to the optimum
#
# A jupytext notebook (open it in Jupyter with the jupytext extension, or run it as a script:
# `python notebooks/quickstart.py`). `QUICKSTART_STEPS` sets the agent's training steps (default 30,000,
# a few minutes on a CPU; the tests run it with a few hundred).
#
# We schedule small offline instances (4-6 requests, the tiny engine: 48 KV tokens, 32 tokens per batch), where
# the CP-SAT solver proves the optimum in seconds, so every policy gets an exact gap.

# %%
import os

import gymnasium as gym
import numpy as np

import infermax_env  # noqa: F401  (registers the envs)
from baselines import make_scheduler
from baselines.optimal import solve_optimal
from infermax_env import Simulator, compute_metrics, objective_value
from infermax_env.instances import tiny_setting

TRAIN_STEPS = int(os.environ.get("QUICKSTART_STEPS", "30000"))
NUM_INSTANCES = int(os.environ.get("QUICKSTART_INSTANCES", "8"))
setting = tiny_setting(num_requests=(4, 6))

# %% [markdown]
# ## 1. The env
# Each step is one scheduling iteration: per request slot, leave / run / evict (the "select" action mode).
# The reward is minus the latency area of the step, so an episode's return is minus the sum of the
# requests' times to last token (TTLT).

# %%
env = gym.make("InferMax-Tiny-v0", setting=setting)
obs, info = env.reset(seed=0)
print(env.observation_space)
print(env.action_space, "| allowed choices now:", int(info["action_mask"].sum()))

# %% [markdown]
# ## 2. A heuristic on the same instances
# Evaluation instances are drawn from their own seeds (10,000 and up), never seen in training.

# %%
seeds = list(range(10_000, 10_000 + NUM_INSTANCES))
workloads = [setting.sample(seed) for seed in seeds]


def heuristic_objective(name: str, workload) -> float:
    sim = Simulator(workload, setting.cost_model, setting.engine)
    sim.run(make_scheduler(name))
    return objective_value(compute_metrics(sim), "latency")


heuristics = {name: [heuristic_objective(name, w) for w in workloads] for name in ("vllm", "sarathi", "infermax")}
for name, values in heuristics.items():
    print(f"{name:>9}: mean sum of TTLT {np.mean(values):.4f} s")

# %% [markdown]
# ## 3. An agent: MaskablePPO (sb3-contrib) on the Dict observation, masks from `env.action_masks()`

# %%
from sb3_contrib import MaskablePPO  # noqa: E402

model = MaskablePPO("MultiInputPolicy", env, n_steps=256, batch_size=64, seed=0, verbose=0)
model.learn(total_timesteps=TRAIN_STEPS)


def agent_objective(workload) -> float:
    obs, _ = env.reset(options={"workload": workload})
    while True:
        action, _ = model.predict(obs, action_masks=env.unwrapped.action_masks(), deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated:
            return info["objective"]
        if truncated:
            raise RuntimeError("the episode hit the step limit")


agent = [agent_objective(w) for w in workloads]
print(f"MaskablePPO after {TRAIN_STEPS} steps: mean sum of TTLT {np.mean(agent):.4f} s")

# %% [markdown]
# ## 4. The gap to the optimum
# `solve_optimal` returns the CP-SAT optimum with its proof status; the gap is (policy - optimum) / optimum.

# %%
optima = [solve_optimal(w, setting.cost_model, setting.engine, objective="latency", time_limit=30, workers=1)
          for w in workloads]
proven = sum(result.status == "OPTIMAL" for result in optima)
optimum = np.array([result.objective for result in optima])
print(f"optimum proven on {proven}/{len(optima)} instances")
for name, values in {**heuristics, "MaskablePPO": agent}.items():
    gap = (np.array(values) - optimum) / optimum
    print(f"{name:>12}: mean gap to the optimum {100 * gap.mean():6.2f}%  (worst {100 * gap.max():.2f}%)")
