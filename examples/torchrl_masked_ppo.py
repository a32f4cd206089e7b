"""TorchRL PPO with invalid-action masking on InferMax (select mode).

``SlotMask`` gives the (K, 3) per-slot mask that TorchRL's ``ActionMask`` transform expects for the one-hot
``(K, 3)`` action spec TorchRL makes of ``MultiDiscrete([3] * K)``; the policy samples each slot from a
``MaskedOneHotCategorical`` and the PPO loss takes the joint log-probability (the sum over slots). Needs
``pip install 'infermax-env[torchrl]'``.

    python examples/torchrl_masked_ppo.py --total-frames 50000
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import ActionMask, GymWrapper, TransformedEnv
from torchrl.modules import MaskedOneHotCategorical, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

import infermax_env  # noqa: F401  (registers the envs)
from infermax_env.wrappers import ScalarInfo, SlotMask


class SlotwiseMaskedOneHot(MaskedOneHotCategorical):
    """One masked categorical per slot; log-probability and entropy of the joint (independent slots) action."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value).sum(-1)

    def entropy(self) -> torch.Tensor:
        return super().entropy().sum(-1)


class Features(nn.Module):
    """The flat input: the (K, F) request rows and the (G,) global features, concatenated."""

    def forward(self, requests: torch.Tensor, global_features: torch.Tensor) -> torch.Tensor:
        return torch.cat([requests.flatten(-2), global_features], dim=-1)


def make_env(env_id: str) -> TransformedEnv:
    return TransformedEnv(GymWrapper(SlotMask(ScalarInfo(gym.make(env_id)))), ActionMask())


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="InferMax-Tiny-v0")
    parser.add_argument("--total-frames", type=int, default=50_000)
    parser.add_argument("--frames-per-batch", type=int, default=1000)
    parser.add_argument("--minibatch-size", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    env = make_env(args.env_id)
    env.set_seed(args.seed)
    num_slots, num_choices = env.action_spec.shape
    size = num_slots * env.observation_spec["requests"].shape[-1] + env.observation_spec["global"].shape[-1]
    features = TensorDictModule(Features(), in_keys=["requests", "global"], out_keys=["features"])
    logits = TensorDictModule(nn.Sequential(nn.Linear(size, 128), nn.Tanh(), nn.Linear(128, num_slots * num_choices),
                                            nn.Unflatten(-1, (num_slots, num_choices))),
                              in_keys=["features"], out_keys=["logits"])
    actor = ProbabilisticActor(TensorDictSequential(features, logits), in_keys={"logits": "logits",
                                                                                "mask": "action_mask"},
                               spec=env.action_spec, distribution_class=SlotwiseMaskedOneHot, return_log_prob=True)
    critic = TensorDictSequential(features, ValueOperator(nn.Sequential(nn.Linear(size, 128), nn.Tanh(),
                                                                        nn.Linear(128, 1)), in_keys=["features"]))

    collector = Collector(env, actor, frames_per_batch=args.frames_per_batch, total_frames=args.total_frames,
                          auto_register_policy_transforms=True)
    advantage = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coeff=0.01)
    optimizer = torch.optim.Adam(loss.parameters(), lr=args.lr)
    start, frames = time.time(), 0
    for batch in collector:
        frames += batch.numel()
        done = batch["next", "done"].squeeze(-1)
        for _ in range(args.epochs):
            with torch.no_grad():
                advantage(batch)
            flat = batch.reshape(-1)
            for index in torch.randperm(len(flat)).split(args.minibatch_size):
                losses = loss(flat[index])
                total = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
                optimizer.zero_grad()
                total.backward()
                nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
                optimizer.step()
        collector.update_policy_weights_()
        print(f"{frames} frames, {int(done.sum())} episodes ended in the batch, mean reward per step "
              f"{batch['next', 'reward'].mean().item():.4f}, {time.time() - start:.0f} s")
    collector.shutdown()
    return {"frames": float(frames), "mean_reward": float(batch["next", "reward"].mean())}


if __name__ == "__main__":
    main()
