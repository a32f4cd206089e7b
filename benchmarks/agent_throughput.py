"""Training throughput of the residual agent on InferMax-v0 windows of 256 requests (oracle False).

    python benchmarks/agent_throughput.py [--windows 2] [--group-size 4] [--updates 3]
    python benchmarks/agent_throughput.py --base sagesched --control ranking --window 256

Prints, for one process and one torch thread: (1) the residual env alone at zero correction, in agent steps
(scheduling iterations, each one ``env.launch``) per second; (2) batched policy
inference over ``group_size`` observations; (3) ``updates`` GroupPPO updates (each ``group_size`` rollouts of one
window plus the PPO epochs: training without validation), in agent steps per second. Defaults: the shipped
agent's recipe (reservation residual on "tuned"). Numbers depend on what else runs on the machine: say so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch as th

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stable_baselines3.common.utils import obs_as_tensor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from agents.curriculum import Curriculum  # noqa: E402
from agents.group_rollouts import GroupPPO  # noqa: E402
from agents.residual import CONTROLS, make_residual_env  # noqa: E402
from agents.train_residual import HYPERPARAMETERS, residual_policy, validation_windows  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--updates", type=int, default=3, help="GroupPPO updates timed")
    parser.add_argument("--base", default="tuned", help="the base heuristic")
    parser.add_argument("--control", choices=CONTROLS, default="reservation", help="what the residual corrects")
    parser.add_argument("--window", type=int, default=32, help="K: the env's slots")
    args = parser.parse_args(argv)
    th.set_num_threads(1)

    def factory():
        return make_residual_env("InferMax-v0", args.base, window=args.window, control=args.control, oracle=False)

    env = factory()
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    workloads = validation_windows(args.windows, offset=20_000_000)
    env.reset(options={"workload": workloads[0]})  # compile the kernels outside the timing
    steps = 0
    started = time.perf_counter()
    for workload in workloads:
        obs, _ = env.reset(options={"workload": workload})
        done = False
        while not done:
            obs, _, done, _, _ = env.step(zero)
            steps += 1
    env_seconds = time.perf_counter() - started
    print(f"residual env alone: {steps / env_seconds:.0f} agent steps/s")

    policy, policy_kwargs = residual_policy(args.control)
    model = GroupPPO(policy, DummyVecEnv([factory]), env_factory=factory, group_size=args.group_size,
                     curriculum=Curriculum(min_requests=256, max_requests=256), policy_kwargs=policy_kwargs,
                     device="cpu", **HYPERPARAMETERS)
    batch = {key: np.stack([obs[key]] * args.group_size) for key in obs}
    with th.no_grad():
        model.policy(obs_as_tensor(batch, model.device))
        started = time.perf_counter()
        for _ in range(50):
            model.policy(obs_as_tensor(batch, model.device))
    inference = (time.perf_counter() - started) / 50
    print(f"batched inference of {args.group_size} observations: {1e3 * inference:.2f} ms "
          f"({args.group_size / inference:.0f} agent steps/s)")
    started = time.perf_counter()
    for update in range(args.updates):
        model.learn(total_timesteps=1, reset_num_timesteps=update == 0)
    seconds = time.perf_counter() - started
    print(f"{args.updates} GroupPPO updates (each {args.group_size} rollouts of a new 256-request window, then "
          f"{HYPERPARAMETERS['n_epochs']} PPO epochs; {model.num_timesteps} agent steps): {seconds:.1f} s = "
          f"{model.num_timesteps / seconds:.0f} agent steps/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
