"""RLlib PPO (new API stack) with invalid-action masking on InferMax, sampling on several EnvRunners.

``import infermax_env.rllib`` registers the InferMax ids with Ray Tune, so the EnvRunners build the env by name
in RLlib's masked format ({"observations", "action_mask"}); :func:`infermax_env.rllib.masked_ppo_config` is
PPOConfig with RLlib's action-masking RLModule. Needs ``pip install 'infermax-env[rllib]'``.

    python examples/rllib_masked_ppo.py --iterations 20 --num-env-runners 2
    python examples/rllib_masked_ppo.py --address auto     # on a running Ray cluster (ray start --head ...)
"""

from __future__ import annotations

import argparse
import time

import ray

from infermax_env.rllib import masked_ppo_config


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="InferMax-Tiny-v0")
    parser.add_argument("--action-mode", default="select", choices=["select", "sequential"])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--num-env-runners", type=int, default=2)
    parser.add_argument("--train-batch-size", type=int, default=2000)
    parser.add_argument("--minibatch-size", type=int, default=250)
    parser.add_argument("--num-epochs", type=int, default=4)
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    config = masked_ppo_config(args.env_id, {"action_mode": args.action_mode}, num_env_runners=args.num_env_runners,
                               train_batch_size=args.train_batch_size, minibatch_size=args.minibatch_size,
                               num_epochs=args.num_epochs, seed=args.seed)
    algo = config.build_algo()
    start = time.time()
    result: dict = {}
    for iteration in range(1, args.iterations + 1):
        result = algo.train()["env_runners"]
        print(f"iteration {iteration}: {result['num_env_steps_sampled_lifetime']:.0f} steps, "
              f"{result.get('num_episodes_lifetime', 0):.0f} episodes, mean return "
              f"{result.get('episode_return_mean', float('nan')):.3f}, {time.time() - start:.0f} s")
    algo.stop()
    ray.shutdown()
    return {"steps": float(result["num_env_steps_sampled_lifetime"]),
            "mean_return": float(result.get("episode_return_mean", float("nan")))}


if __name__ == "__main__":
    main()
