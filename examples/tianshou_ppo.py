"""Tianshou PPO with invalid-action masking on InferMax (sequential mode, Discrete(2K + 1)).

Tianshou's documented PPO recipe (``DiscreteActorPolicy``, ``PPO``, collectors, ``run_training``) plus
:mod:`infermax_env.tianshou_support`: ``make_env`` (sequential mode, Tianshou's ``{"obs", "mask"}`` observation,
a fixed-schema info the replay buffer can store), ``MaskedActor`` (masked logits, since Tianshou's PPO does not
read ``obs.mask``) and ``Critic`` (a value network of ``obs.obs``). Needs ``pip install 'infermax-env[tianshou]'``.

    python examples/tianshou_ppo.py --epochs 10
    python examples/tianshou_ppo.py --env-id InferMax-v0 --test-episodes 0   # its episodes are ~10^5 steps
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.modelfree.ppo import PPO
from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Collector, VectorReplayBuffer
from tianshou.env import DummyVectorEnv
from tianshou.trainer import OnPolicyTrainerParams
from torch import nn

from infermax_env.tianshou_support import Critic, MaskedActor, make_env


def mlp(inputs: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, 128), nn.Tanh(), nn.Linear(128, outputs))


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="InferMax-Tiny-v0")
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--epoch-steps", type=int, default=5000, help="env steps per epoch")
    parser.add_argument("--collect-steps", type=int, default=1000, help="env steps per PPO update")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--test-episodes", type=int, default=2, help="test episodes per epoch (0: no test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    train_envs = DummyVectorEnv([lambda: make_env(args.env_id)] * args.num_envs)
    train_envs.seed(args.seed)
    space = make_env(args.env_id).observation_space
    obs_size, num_actions = space["obs"].shape[0], space["mask"].shape[0]
    policy = DiscreteActorPolicy(actor=MaskedActor(mlp(obs_size, num_actions)),
                                 action_space=gym.spaces.Discrete(num_actions), deterministic_eval=True)
    algorithm = PPO(policy=policy, critic=Critic(mlp(obs_size, 1)), optim=AdamOptimizerFactory(lr=3e-4),
                    max_grad_norm=0.5)
    train_collector = Collector(algorithm, train_envs, VectorReplayBuffer(args.collect_steps, args.num_envs))
    test_collector = None
    if args.test_episodes:
        test_envs = DummyVectorEnv([lambda: make_env(args.env_id)] * args.test_episodes)
        test_envs.seed(args.seed + 1000)
        test_collector = Collector(algorithm, test_envs)
    result = algorithm.run_training(OnPolicyTrainerParams(
        training_collector=train_collector, test_collector=test_collector, max_epochs=args.epochs,
        epoch_num_steps=args.epoch_steps, collection_step_num_env_steps=args.collect_steps,
        update_step_num_repetitions=4, test_step_num_episodes=max(args.test_episodes, 1), batch_size=args.batch_size,
        show_progress=False))
    print(f"{result.update_step} PPO updates, {result.train_step} env steps; best test return "
          f"{result.best_reward:.3f}; {result.timing.total_time:.0f} s")
    return {"best_reward": float(result.best_reward)}


if __name__ == "__main__":
    main()
