"""The TorchRL and Tianshou pieces (infermax_env.torchrl_support, infermax_env.tianshou_support): the joint
masked distribution, the masked actor, and the envs they are made for."""

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")


def random_mask(generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """A random bool mask over the last axis with at least one allowed entry per row."""
    mask = torch.rand(shape, generator=generator) < 0.5
    mask[..., 0] |= ~mask.any(-1)
    return mask


def test_slotwise_distribution_is_the_joint_of_masked_per_slot_categoricals():
    pytest.importorskip("torchrl")
    from infermax_env.torchrl_support import SlotwiseMaskedOneHot

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, 3, generator=generator)
    mask = random_mask(generator, (5, 7, 3))
    distribution = SlotwiseMaskedOneHot(logits=logits, mask=mask)
    per_slot = torch.log_softmax(logits.masked_fill(~mask, float("-inf")), -1)
    for _ in range(50):
        action = distribution.sample()                                   # (5, 7, 3) one-hot
        assert action.shape == (5, 7, 3)
        assert not (action.bool() & ~mask).any(), "a masked (slot, choice) was sampled"
        expected = per_slot.gather(-1, action.argmax(-1, keepdim=True)).squeeze(-1).sum(-1)
        assert torch.allclose(distribution.log_prob(action), expected, atol=1e-5)

    entropy = -(per_slot.exp() * per_slot.nan_to_num(neginf=0.0)).sum(-1).sum(-1)
    assert torch.allclose(distribution.entropy(), entropy, atol=1e-5)

    has_masked = (~mask).any(-1)                                         # (5, 7): slots with a masked choice
    choice = torch.where(has_masked, (~mask).float().argmax(-1), mask.float().argmax(-1))
    log_prob = distribution.log_prob(torch.nn.functional.one_hot(choice, 3).float())
    assert torch.isneginf(log_prob[has_masked.any(-1)]).all(), "a masked action must have probability 0"


def test_torchrl_env_enforces_the_slot_mask_and_flattens_the_observation():
    pytest.importorskip("torchrl")
    from infermax_env.torchrl_support import make_env

    env = make_env("InferMax-Tiny-v0")
    env.set_seed(0)
    rollout = env.rollout(50)                                            # random actions drawn from the masked spec
    action, mask = rollout["action"].bool(), rollout["action_mask"]
    assert action.shape == mask.shape and action.shape[-1] == 3
    assert not (action & ~mask).any()
    expected = torch.cat([rollout["requests"].flatten(-2), rollout["global"]], -1)
    assert torch.equal(rollout["observation"], expected)
    with pytest.raises(ValueError, match="select"):
        make_env("InferMax-Tiny-v0", action_mode="sequential")


class FavourFirst(torch.nn.Module):
    """A network whose logits prefer low action indices strongly, so masking is what keeps them out."""

    def __init__(self, num_actions: int):
        super().__init__()
        self.register_buffer("logits", torch.arange(num_actions, 0, -1, dtype=torch.float32) * 10.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(obs.shape[0], -1)


def test_masked_actor_gives_masked_actions_zero_probability():
    pytest.importorskip("tianshou")
    from tianshou.data import Batch

    from infermax_env.tianshou_support import MaskedActor

    generator = torch.Generator().manual_seed(1)
    mask = random_mask(generator, (64, 9))
    logits, state = MaskedActor(FavourFirst(9))(Batch(obs=np.zeros((64, 4), np.float32), mask=mask.numpy()))
    assert state is None
    assert torch.isneginf(logits[~mask]).all() and torch.isfinite(logits[mask]).all()
    assert mask[torch.arange(64), logits.argmax(-1)].all()
    samples = torch.distributions.Categorical(logits=logits).sample((100,))
    assert mask.gather(1, samples.T).all()


def test_tianshou_ppo_never_plays_a_masked_action():
    pytest.importorskip("tianshou")
    from tianshou.algorithm.modelfree.ppo import PPO
    from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv

    from infermax_env.tianshou_support import Critic, MaskedActor, make_env

    env = make_env("InferMax-Tiny-v0")
    assert isinstance(env.action_space, gym.spaces.Discrete)
    assert env.observation_space["mask"].dtype == bool and env.observation_space["obs"].dtype == np.float32
    num_actions = env.action_space.n
    policy = DiscreteActorPolicy(actor=MaskedActor(FavourFirst(num_actions)), action_space=env.action_space)
    algorithm = PPO(policy=policy, critic=Critic(torch.nn.Linear(env.observation_space["obs"].shape[0], 1)),
                    optim=AdamOptimizerFactory(lr=1e-3))
    envs = DummyVectorEnv([lambda: make_env("InferMax-Tiny-v0")] * 2)
    envs.seed(0)
    buffer = VectorReplayBuffer(400, 2)
    Collector(algorithm, envs, buffer).collect(n_step=400, reset_before_collect=True)
    played = buffer[np.arange(len(buffer))]
    assert len(played.act) == 400
    assert np.asarray(played.obs.mask)[np.arange(400), played.act].all()
