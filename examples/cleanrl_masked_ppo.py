"""CleanRL-style single-file PPO with invalid-action masking on InferMax (select mode, MultiDiscrete([3] * K)).

The only InferMax-specific line is the vector env: InferMax's native one (``gym.make_vec`` picks its
``vector_entry_point``), with ``flat=True`` for ``FlatObservation``'s format ``{"observations": flat float32
vector, "action_mask": (3K,) mask}`` and a fixed-schema scalar ``info``. The agent masks each slot's
(leave, run, evict) logits and sums the K slot log-probabilities, the usual factorisation of a MultiDiscrete
policy. Needs torch (``pip install 'infermax-env[sb3]'`` or just torch).

    python examples/cleanrl_masked_ppo.py --total-timesteps 100000 --num-envs 8
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

import infermax_env  # noqa: F401  (registers the envs)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="InferMax-Tiny-v0")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--total-timesteps", type=int, default=100_000)
    parser.add_argument("--learning-rate", type=float, default=2.5e-4)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=128, help="steps per env per rollout")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--clip-coef", type=float, default=0.2)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--vf-coef", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    return parser.parse_args(argv)


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_size: int, nvec: np.ndarray):
        super().__init__()
        self.nvec = nvec
        self.critic = nn.Sequential(layer_init(nn.Linear(obs_size, 128)), nn.Tanh(),
                                    layer_init(nn.Linear(128, 128)), nn.Tanh(), layer_init(nn.Linear(128, 1), std=1.0))
        self.actor = nn.Sequential(layer_init(nn.Linear(obs_size, 128)), nn.Tanh(),
                                   layer_init(nn.Linear(128, 128)), nn.Tanh(),
                                   layer_init(nn.Linear(128, int(nvec.sum())), std=0.01))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def get_action_and_value(self, x: torch.Tensor, mask: torch.Tensor, action: torch.Tensor | None = None):
        logits = self.actor(x).view(len(x), len(self.nvec), -1)
        logits = torch.where(mask.view_as(logits), logits, torch.tensor(-1e8))
        distribution = Categorical(logits=logits)
        if action is None:
            action = distribution.sample()
        return action, distribution.log_prob(action).sum(1), distribution.entropy().sum(1), self.critic(x)


def main(argv=None) -> dict[str, float]:
    args = parse_args(argv)
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = max(args.total_timesteps // batch_size, 1)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    envs = gym.make_vec(args.env_id, args.num_envs, vectorization_mode="vector_entry_point", flat=True)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    obs_size = envs.single_observation_space["observations"].shape[0]
    mask_size = envs.single_observation_space["action_mask"].shape[0]
    nvec = envs.single_action_space.nvec
    agent = Agent(obs_size, nvec)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    obs = torch.zeros((args.num_steps, args.num_envs, obs_size))
    masks = torch.zeros((args.num_steps, args.num_envs, mask_size), dtype=torch.bool)
    actions = torch.zeros((args.num_steps, args.num_envs, len(nvec)), dtype=torch.long)
    logprobs, rewards, dones, values = (torch.zeros((args.num_steps, args.num_envs)) for _ in range(4))

    next_obs, _ = envs.reset(seed=args.seed)
    next_done = torch.zeros(args.num_envs)
    returns_seen: list[float] = []
    objectives_seen: list[float] = []
    start = time.time()
    for iteration in range(1, num_iterations + 1):
        for step in range(args.num_steps):
            x = torch.as_tensor(next_obs["observations"])
            mask = torch.as_tensor(next_obs["action_mask"]).bool()
            obs[step], masks[step], dones[step] = x, mask, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(x, mask)
            actions[step], logprobs[step], values[step] = action, logprob, value.flatten()
            next_obs, reward, terminations, truncations, infos = envs.step(action.numpy())
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_done = torch.as_tensor(np.logical_or(terminations, truncations), dtype=torch.float32)
            if "episode" in infos:
                ended = infos["_episode"]
                returns_seen += infos["episode"]["r"][ended].tolist()
                objectives_seen += infos["objective"][terminations].tolist()

        with torch.no_grad():  # generalised advantage estimation
            next_value = agent.get_value(torch.as_tensor(next_obs["observations"])).flatten()
            advantages = torch.zeros_like(rewards)
            last = 0.0
            for t in reversed(range(args.num_steps)):
                next_nonterminal = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                next_values = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * next_values * next_nonterminal - values[t]
                advantages[t] = last = delta + args.gamma * args.gae_lambda * next_nonterminal * last
            returns = advantages + values

        b_obs, b_masks, b_actions = obs.flatten(0, 1), masks.flatten(0, 1), actions.flatten(0, 1)
        b_logprobs, b_advantages, b_returns = logprobs.flatten(), advantages.flatten(), returns.flatten()
        indices = np.arange(batch_size)
        for _ in range(args.update_epochs):
            np.random.shuffle(indices)
            for begin in range(0, batch_size, minibatch_size):
                mb = indices[begin:begin + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_masks[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio,
                                    -mb_adv * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((newvalue.flatten() - b_returns[mb]) ** 2).mean()
                loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        recent = returns_seen[-20:]
        print(f"iteration {iteration}/{num_iterations}: {iteration * batch_size} steps, "
              f"{len(returns_seen)} episodes, mean return (last 20) "
              f"{np.mean(recent) if recent else float('nan'):.3f}, {time.time() - start:.0f} s")
    envs.close()
    return {"episodes": len(returns_seen), "mean_return": float(np.mean(returns_seen[-20:])) if returns_seen else 0.0,
            "mean_objective": float(np.mean(objectives_seen[-20:])) if objectives_seen else 0.0}


if __name__ == "__main__":
    main()
