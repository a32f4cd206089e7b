"""Agents package on synthetic Dict observations: extractor, slot-scoring policies, builders, gap report."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from agents.builders import (ObservationSpaceMismatchError, attach_metadata, build_model, check_algorithm,
                             load_agent, load_config)
from agents.evaluation import (EVAL_SEED_OFFSET, GapReport, OptimumCache, OptimumRecord, TrainingSeedWrapper,
                               as_action_fn, evaluation_seeds, training_seeds)
from agents.extractors import SlotSetExtractor, masked_max, masked_mean
from agents.policies import SlotScoringHead, action_layout

F, G = 5, 3
TINY_ROLLOUT = {"n_steps": 16, "batch_size": 16}


class SlotEnv(gym.Env):
    """A stand-in with the InferMax observation layout: K request slots, some of them padding."""

    def __init__(self, num_slots: int = 6, action_space: gym.Space | None = None):
        k = num_slots
        self.num_slots = k
        self.observation_space = gym.spaces.Dict({
            "requests": gym.spaces.Box(0, 50, (k, F), np.float32),
            "slot_mask": gym.spaces.Box(0, 1, (k,), np.float32),
            "global": gym.spaces.Box(0, 50, (G,), np.float32),
            "action_mask": gym.spaces.Box(0, 1, (2 * k + 1,), np.float32),
        })
        self.action_space = action_space if action_space is not None else gym.spaces.Discrete(2 * k + 1)
        self.steps = 0

    def _obs(self):
        obs = self.observation_space.sample()
        obs["slot_mask"][:] = 0
        obs["slot_mask"][: self.np_random.integers(1, self.num_slots + 1)] = 1
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.steps = 0
        return self._obs(), {"seed": seed}

    def step(self, action):
        self.steps += 1
        return self._obs(), -1.0, self.steps >= 8, False, {}

    def action_masks(self):
        n = self.action_space.n if isinstance(self.action_space, gym.spaces.Discrete) else int(
            np.sum(self.action_space.nvec))
        mask = np.ones(n, dtype=bool)
        mask[0] = False
        return mask


def batch(obs):
    return {key: th.as_tensor(value)[None] for key, value in obs.items()}


def sample_obs(k=6, valid=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"requests": rng.uniform(0, 40, (k, F)).astype(np.float32),
            "slot_mask": (np.arange(k) < valid).astype(np.float32),
            "global": rng.uniform(0, 40, G).astype(np.float32),
            "action_mask": np.ones(2 * k + 1, dtype=np.float32)}


def permuted(obs, perm):
    out = dict(obs)
    out["requests"], out["slot_mask"] = obs["requests"][perm], obs["slot_mask"][perm]
    return out


@pytest.fixture
def extractor():
    th.manual_seed(0)
    return SlotSetExtractor(SlotEnv().observation_space, embed_dim=16, num_heads=2).eval()


def test_extractor_context_is_slot_order_invariant_and_slots_equivariant(extractor):
    obs = sample_obs(valid=4)
    perm = np.array([3, 0, 5, 1, 4, 2])
    with th.no_grad():
        a = extractor.encode(batch(obs))
        b = extractor.encode(batch(permuted(obs, perm)))
    assert th.allclose(a.context, b.context, atol=1e-5)
    assert th.allclose(a.slots[0, perm], b.slots[0], atol=1e-5)
    flat = extractor(batch(obs))
    assert flat.shape == (1, extractor.features_dim)
    unpacked = extractor.unpack(flat)
    assert th.allclose(unpacked.context, a.context) and th.equal(unpacked.mask, a.mask)


def test_extractor_ignores_padding_slot_contents(extractor):
    obs = sample_obs(valid=3)
    noisy = dict(obs)
    noisy["requests"] = obs["requests"].copy()
    noisy["requests"][3:] = 1e4
    with th.no_grad():
        assert th.allclose(extractor(batch(obs)), extractor(batch(noisy)), atol=1e-5)


def test_extractor_handles_an_empty_slot_set(extractor):
    with th.no_grad():
        features = extractor(batch(sample_obs(valid=0)))
    assert th.isfinite(features).all()
    assert th.count_nonzero(extractor.unpack(features).slots) == 0


def test_masked_pooling():
    slots = th.tensor([[[1.0, -2.0], [3.0, -4.0], [100.0, 100.0]]])
    mask = th.tensor([[True, True, False]])
    assert th.allclose(masked_mean(slots, mask), th.tensor([[2.0, -3.0]]))
    assert th.allclose(masked_max(slots, mask), th.tensor([[3.0, -2.0]]))
    assert th.equal(masked_max(slots, th.zeros_like(mask)), th.zeros(1, 2))


def test_extractor_rejects_a_non_infermax_space():
    with pytest.raises(KeyError, match="slot_mask"):
        SlotSetExtractor(gym.spaces.Dict({"requests": gym.spaces.Box(0, 1, (4, 3)),
                                          "global": gym.spaces.Box(0, 1, (2,))}))
    with pytest.raises(TypeError, match="Dict"):
        SlotSetExtractor(gym.spaces.Box(0, 1, (4,)))


@pytest.mark.parametrize("space, expected", [
    (gym.spaces.MultiDiscrete([3] * 6), (3, 0, True)),
    (gym.spaces.Discrete(13), (2, 1, False)),
    (gym.spaces.Box(-1, 1, (6,)), (1, 0, True)),
])
def test_action_layout(space, expected):
    assert action_layout(space, 6) == expected


def test_action_layout_rejects_mismatched_spaces():
    with pytest.raises(ValueError, match="MultiDiscrete"):
        action_layout(gym.spaces.MultiDiscrete([3] * 5), 6)
    with pytest.raises(ValueError, match="Box"):
        action_layout(gym.spaces.Box(-1, 1, (5,)), 6)


@pytest.mark.parametrize("space", [gym.spaces.MultiDiscrete([3] * 6), gym.spaces.Discrete(13),
                                   gym.spaces.Box(-1, 1, (6,), np.float32)])
def test_slot_scoring_head_is_equivariant(extractor, space):
    head = SlotScoringHead(extractor, space, hidden=8)
    obs = sample_obs(valid=6)
    perm = np.array([2, 0, 1, 5, 3, 4])
    with th.no_grad():
        a = head.forward_actor(extractor(batch(obs)))
        b = head.forward_actor(extractor(batch(permuted(obs, perm))))
    per_slot, extra, slot_major = action_layout(space, 6)
    assert a.shape == (1, 6 * per_slot + extra)

    def by_slot(logits):
        body = logits[0, : 6 * per_slot]
        return body.reshape(6, per_slot) if slot_major else body.reshape(per_slot, 6).T

    assert th.allclose(by_slot(a)[perm], by_slot(b), atol=1e-5)
    assert th.allclose(a[0, 6 * per_slot:], b[0, 6 * per_slot:], atol=1e-5)


def test_load_config_and_unknown_algorithm(tmp_path):
    config = load_config("maskable_ppo")
    assert config["algo"] == "maskable_ppo" and "n_steps" in config["hyperparameters"]
    with pytest.raises(ValueError, match="unknown algorithm 'a2c'"):
        check_algorithm("a2c")
    bad = tmp_path / "bad.json"
    bad.write_text('{"algo": "ppo", "policy": "slot_scoring", "learning_rate": 1}')
    with pytest.raises(ValueError, match="unknown keys.*learning_rate"):
        load_config(bad)


@pytest.mark.parametrize("algo, space", [  # MaskablePPO on Discrete runs end to end in test_train_cli.py
    ("maskable_ppo", gym.spaces.MultiDiscrete([3] * 6)),
    ("ppo", gym.spaces.Box(-1, 1, (6,), np.float32)),
    ("qrdqn", gym.spaces.Discrete(13)),
])
def test_build_learn_save_load_act(tmp_path, algo, space):
    env = SlotEnv(action_space=space)
    small = {"n_steps": 32, "batch_size": 16, "n_epochs": 1} if algo != "qrdqn" else {
        "learning_starts": 16, "batch_size": 16, "buffer_size": 200}
    model = build_model(load_config(algo), env, seed=0, device="cpu", hyperparameters=small)
    model.learn(64)
    attach_metadata(model, "SlotEnv", {"action_mode": "x"}, algo)
    model.save(tmp_path / "model.zip")
    loaded = load_agent(tmp_path / "model.zip", SlotEnv(action_space=space), device="cpu")
    obs, _ = env.reset(seed=1)
    action = as_action_fn(loaded)(obs, env)
    assert space.contains(np.asarray(action, dtype=space.dtype))
    assert loaded.infermax_metadata["algo"] == algo


def test_qrdqn_needs_discrete_actions():
    with pytest.raises(ValueError, match="Discrete"):
        build_model(load_config("qrdqn"), SlotEnv(action_space=gym.spaces.MultiDiscrete([3] * 6)))


def test_loaded_model_refuses_a_mismatched_observation_space(tmp_path):
    env = SlotEnv(num_slots=6, action_space=gym.spaces.MultiDiscrete([3] * 6))
    model = build_model(load_config("maskable_ppo"), env, device="cpu", hyperparameters=TINY_ROLLOUT)
    attach_metadata(model, "SlotEnv", {}, "maskable_ppo")
    model.save(tmp_path / "model.zip")
    other = SlotEnv(num_slots=8, action_space=gym.spaces.MultiDiscrete([3] * 8))
    with pytest.raises(ObservationSpaceMismatchError, match=r"requests: \(6, 5\).*requests: \(8, 5\)"):
        load_agent(tmp_path / "model.zip", other)


def test_maskable_agent_respects_action_masks(tmp_path):
    env = SlotEnv(action_space=gym.spaces.Discrete(13))
    model = build_model(load_config("maskable_ppo"), env, device="cpu", hyperparameters=TINY_ROLLOUT)
    act = as_action_fn(model, deterministic=False)
    obs, _ = env.reset(seed=0)
    assert all(int(act(obs, env)) != 0 for _ in range(50))


def test_seeds_are_disjoint():
    train = training_seeds(3)
    drawn = [next(train) for _ in range(5000)]
    assert max(drawn) < EVAL_SEED_OFFSET
    again = training_seeds(3)
    assert [next(again) for _ in range(10)] == drawn[:10]
    assert evaluation_seeds(3) == [EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 1, EVAL_SEED_OFFSET + 2]
    with pytest.raises(ValueError, match="disjoint"):
        evaluation_seeds(3, offset=5)


def test_training_seed_wrapper_draws_from_the_training_stream():
    env = TrainingSeedWrapper(SlotEnv(), seed=7)
    expected = training_seeds(7)
    assert [env.reset()[1]["seed"] for _ in range(3)] == [next(expected) for _ in range(3)]
    with pytest.raises(ValueError, match="evaluation range"):
        env.reset(seed=EVAL_SEED_OFFSET)


def record(objective, bound, status="FEASIBLE", source="solver"):
    return OptimumRecord(status, objective, bound, 0.1, 1.0, 1, source)


def test_gap_report_brackets_and_best_heuristic(tmp_path):
    report = GapReport("latency", [10, 11], [4, 5])
    report.add("h1", [12.0, 10.0], heuristic=True)
    report.add("h2", [11.0, 11.5], heuristic=True, oracle=True)
    report.add("agent", [10.5, 10.0])
    report.optimum = [record(10.0, 10.0, "OPTIMAL"), record(10.0, 8.0, source="h1")]
    report.solver = "CP-SAT, 1 s per instance, 1 worker, seed 0"
    low, high = report.gap_to_optimum("agent")
    assert np.allclose(low, [0.05, 0.0]) and np.allclose(high, [0.05, 0.25])
    assert report.best_heuristic() == "h1"  # mean ratio to the optimum 1.1 against 1.125
    assert np.allclose(report.gap_to_best_heuristic("agent"), [10.5 / 11 - 1, 0.0])
    rows = {row["policy"]: row for row in report.summary_rows()}
    agent = rows["agent"]
    assert agent["worst_gap_to_best_known"] == pytest.approx(0.05)
    # both ends of the bracket, and the true gap on the one proven instance
    assert agent["gap_to_best_known"] == pytest.approx(0.025) and agent["gap_to_bound"] == pytest.approx(0.15)
    assert agent["gap_proven"] == pytest.approx(0.05)
    assert agent["beats_best_heuristic"] == 1 and agent["ties_best_heuristic"] == 1
    assert [rows[name]["oracle"] for name in ("h1", "h2", "agent")] == ["no", "yes", "no"]
    assert agent["avg_sum_ttlt_s"] == pytest.approx(10.25)
    assert report.proven_count() == 1
    paths = report.write(tmp_path)
    assert all(path.is_file() for path in paths.values())
    text = paths["table_md"].read_text()
    assert "proven on 1/2" in text and "CP-SAT, 1 s per instance" in text and "h1 on 1" in text
    assert "| gap_to_best_known | gap_to_bound | gap_proven |" in text
    instances = paths["instances_csv"].read_text().splitlines()
    assert "best_known" in instances[0] and "gap_to_bound_agent" in instances[0] and "proven" in instances[0]
    with pytest.raises(ValueError, match="3 objectives for 2"):
        report.add("bad", [1.0, 2.0, 3.0])


def test_a_policy_beating_the_solver_schedule_becomes_the_best_known_not_better_than_the_optimum():
    report = GapReport("latency", [1, 2], [4, 4])
    report.add("agent", [9.0, 10.0])
    report.add("h", [9.5, 11.0], heuristic=True)
    report.optimum = [record(10.0, 8.0), record(10.0, 10.0, "OPTIMAL")]
    low, high = report.gap_to_optimum("h")
    assert np.allclose(low, [9.5 / 9 - 1, 0.1]) and np.allclose(high, [9.5 / 8 - 1, 0.1])
    rows = {row["policy"]: row for row in report.summary_rows()}
    assert rows["agent"]["gap_to_best_known"] == 0.0 and rows["agent"]["beats_solver"] == 1
    assert rows["h"]["beats_solver"] == 1 and rows["agent"]["gap_to_bound"] > 0
    assert min(row["gap_to_best_known"] for row in rows.values()) >= 0  # nothing looks better than optimal
    text = report.to_markdown()
    assert "beats_solver counts those instances" in text
    report.optimum = [record(10.0, 8.0), record(10.0, 9.0)]
    assert "| n/a |" in report.to_markdown()  # gap_proven with no proven instance


class FakeResult:
    def __init__(self, objective, bound, status):
        self.objective, self.best_bound, self.status, self.wall_time = objective, bound, status, 0.01


def test_optimum_cache_is_keyed_by_the_solver_settings(tmp_path, monkeypatch):
    calls = []

    def solver(workload, cost_model, engine, **kwargs):
        calls.append((kwargs["time_limit"], kwargs["workers"]))
        proven = kwargs["time_limit"] >= 2
        return FakeResult(5.0, 5.0 if proven else 4.0, "OPTIMAL" if proven else "FEASIBLE")

    import agents.evaluation.optimum_cache as optimum_cache

    monkeypatch.setattr(optimum_cache, "simulator_config", lambda env: (None, None, True))
    cache = OptimumCache(tmp_path / "optima.json", solver=solver)
    first = cache.solve("tiny", "latency", 3, workload=None, env=None, time_limit=1.0)
    reopened = OptimumCache(tmp_path / "optima.json", solver=solver)
    again = reopened.solve("tiny", "latency", 3, None, None, time_limit=1.0)
    assert first == again and not first.proven and calls == [(1.0, 1)]
    better = reopened.solve("tiny", "latency", 3, None, None, time_limit=5.0)
    assert better.proven and calls == [(1.0, 1), (5.0, 1)]
    # other settings never overwrite a record: the first command still reads its own numbers
    assert OptimumCache(tmp_path / "optima.json", solver=solver).solve(
        "tiny", "latency", 3, None, None, time_limit=1.0) == first
    cache.solve("tiny", "latency", 3, None, None, time_limit=1.0, workers=4)
    assert calls[-1] == (1.0, 4) and len(calls) == 3
