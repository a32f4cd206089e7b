"""TorchRL PPO with invalid-action masking on InferMax (select mode).

TorchRL's documented PPO recipe (``Collector``, ``GAE``, ``ClipPPOLoss``) plus two pieces of
:mod:`infermax_env.torchrl_support`: ``make_env`` (the env with the (K, 3) per-slot mask that TorchRL's
``ActionMask`` transform expects for the one-hot ``(K, 3)`` action) and ``SlotwiseMaskedOneHot`` (the masked
per-slot distribution with the joint log-probability PPO needs). Needs ``pip install 'infermax-env[torchrl]'``.

    python examples/torchrl_masked_ppo.py --total-frames 50000
"""

from __future__ import annotations

import argparse
import time

import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from infermax_env.torchrl_support import SlotwiseMaskedOneHot, make_env


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
    size = env.observation_spec["observation"].shape[-1]
    logits = TensorDictModule(nn.Sequential(nn.Linear(size, 128), nn.Tanh(), nn.Linear(128, num_slots * num_choices),
                                            nn.Unflatten(-1, (num_slots, num_choices))),
                              in_keys=["observation"], out_keys=["logits"])
    actor = ProbabilisticActor(logits, in_keys={"logits": "logits", "mask": "action_mask"}, spec=env.action_spec,
                               distribution_class=SlotwiseMaskedOneHot, return_log_prob=True)
    critic = ValueOperator(nn.Sequential(nn.Linear(size, 128), nn.Tanh(), nn.Linear(128, 1)), in_keys=["observation"])

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
