"""The InferMax Gymnasium env: registration, spaces, seeds, rewards, masks, repairs and rendering."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import infermax_env  # noqa: F401  (registers the envs)
from baselines import VLLMScheduler  # importing baselines registers the scheduler names reference= accepts
from infermax_env import Decision, InfeasibleDecisionError, LinearCostModel, Simulator, Workload, objective_value
from infermax_env.envs import GLOBAL_FEATURES, GLOBAL_INDEX, REQUEST_FEATURES, REQUEST_INDEX, InvalidActionError
from infermax_env.instances import INFERMAX_ENGINE, TINY_ENGINE, tiny_setting
from tests.conftest import run_python

MODES = ("select", "priority", "sequential")


def random_valid_action(env: gym.Env, rng: np.random.Generator):
    """A uniformly random action among those the env's mask allows."""
    base = env.unwrapped
    mask = base.action_masks()
    if base.config.action_mode == "select":
        return np.argmax(rng.random((len(mask) // 3, 3)) * mask.reshape(-1, 3), axis=1)
    if base.config.action_mode == "priority":
        return rng.uniform(-1, 1, size=env.action_space.shape).astype(np.float32)
    return int(rng.choice(np.flatnonzero(mask)))


def run_episode(env: gym.Env, seed: int, rng_seed: int = 0, max_steps: int = 5_000):
    """Random valid actions until the episode ends; returns (rewards, last info, observations)."""
    rng = np.random.default_rng(rng_seed)
    obs, info = env.reset(seed=seed)
    rewards, observations = [], [obs]
    for _ in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(random_valid_action(env, rng))
        rewards.append(reward)
        observations.append(obs)
        if terminated or truncated:
            break
    return rewards, info, observations


# ---- registration and configuration ------------------------------------------------------------------------
def test_registered_ids_have_their_documented_defaults():
    tiny = gym.make("InferMax-Tiny-v0").unwrapped
    assert tiny.config.engine == TINY_ENGINE and tiny.config.window == 12
    assert isinstance(tiny.config.cost_model, LinearCostModel)
    v0 = gym.make("InferMax-v0").unwrapped
    assert v0.config.engine == INFERMAX_ENGINE and v0.config.window == 64
    assert (v0.config.model, v0.config.gpu, v0.config.tensor_parallel) == ("llama-3-70b", "a100-80gb", 4)
    assert v0.observation_space["requests"].shape == (64, len(REQUEST_FEATURES))
    assert v0.observation_space["global"].shape == (len(GLOBAL_FEATURES),)
    assert v0.action_space == gym.spaces.MultiDiscrete([3] * 64)
    _, info = v0.reset(seed=0)
    assert info["num_requests"] == 256 and "conv" in info["workload_source"]


def test_v0_falls_back_to_a_contended_synthetic_workload_without_the_trace(monkeypatch):
    import infermax_env.envs.config as config
    from baselines.vllm import VLLMScheduler

    monkeypatch.setattr(config, "default_trace_dir", lambda: None)
    env = gym.make("InferMax-v0")
    _, info = env.reset(seed=0)
    assert info["workload_source"].startswith("synthetic stand-in") and info["num_requests"] == 256
    base = env.unwrapped
    metrics = Simulator(base.sim.workload, base.config.cost_model, base.config.engine).run(VLLMScheduler())
    assert metrics["peak_kv_utilization"] > 0.99 and metrics["evictions"] > 0


@pytest.mark.parametrize("mode, space", [("select", gym.spaces.MultiDiscrete([3] * 5)),
                                         ("priority", gym.spaces.Box(-1, 1, (5,), np.float32)),
                                         ("sequential", gym.spaces.Discrete(11))])
def test_kwargs_configure_the_env(mode, space):
    env = gym.make("InferMax-Tiny-v0", action_mode=mode, window=5, kv_capacity=40, token_budget=16,
                   max_batch_size=3, block_size=2, objective="gpu_time", oracle=True)
    base = env.unwrapped
    assert env.action_space == space
    assert base.config.engine.kv_capacity == 40 and base.config.engine.block_size == 2
    obs, info = env.reset(seed=1)
    assert obs["action_mask"].shape == (base.mode.mask_size,)
    assert np.array_equal(info["action_mask"], base.action_masks())


def test_deployment_kwargs_switch_to_the_roofline_model_and_derive_m():
    base = gym.make("InferMax-Tiny-v0", model="llama-3-8b", gpu="h100-sxm", tensor_parallel=1,
                    kv_capacity="deployment").unwrapped
    assert type(base.config.cost_model).__name__ == "RooflineCostModel"
    assert base.config.engine.kv_capacity > 100_000
    with pytest.raises(ValueError, match="linear"):
        gym.make("InferMax-Tiny-v0", model="llama-3-8b", cost_model="linear")


@pytest.mark.parametrize("bad", [{"action_mode": "greedy"}, {"objective": "throughput"}, {"window": 0},
                                 {"reward_scale": -1.0}, {"kv_capacity": "lots"}])
def test_bad_configuration_is_a_clear_error(bad):
    key = next(iter(bad))
    with pytest.raises(ValueError, match=key.split("_")[0]):
        gym.make("InferMax-Tiny-v0", **bad)


# ---- seeds and instances -------------------------------------------------------------------------------------
def test_tiny_seed_maps_to_the_shared_setting_instance():
    env = gym.make("InferMax-Tiny-v0")
    setting = tiny_setting()
    for seed in (0, 1, 7, 123):
        env.reset(seed=seed)
        served, expected = env.unwrapped.sim.workload, setting.sample(seed)
        for name in ("arrival", "prompt_len", "output_len"):
            assert np.array_equal(getattr(served, name), getattr(expected, name))
    # Unseeded resets continue the seeded stream: the second workload is the generator's second draw.
    rng = np.random.default_rng(5)
    setting.generator(rng)
    second = setting.generator(rng)
    env.reset(seed=5)
    env.reset()
    assert np.array_equal(env.unwrapped.sim.workload.prompt_len, second.prompt_len)


@pytest.mark.parametrize("mode", MODES)
def test_seeded_resets_reproduce_trajectories(mode):
    env = gym.make("InferMax-Tiny-v0", action_mode=mode)
    first_rewards, first_info, first_obs = run_episode(env, seed=3, rng_seed=9)
    second_rewards, second_info, second_obs = run_episode(env, seed=3, rng_seed=9)
    assert first_rewards == second_rewards
    assert all(np.array_equal(a[key], b[key]) for a, b in zip(first_obs, second_obs) for key in a)
    assert first_info["metrics"] == second_info["metrics"]


def test_reset_options_serve_a_given_workload():
    workload = Workload.from_lists([5, 7, 3], [2, 1, 4])
    env = gym.make("InferMax-Tiny-v0")
    obs, info = env.reset(seed=0, options={"workload": workload})
    assert env.unwrapped.sim.workload is workload and info["num_requests"] == 3
    assert obs["slot_mask"].tolist() == [1, 1, 1] + [0] * 9
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"seed": 1})
    with pytest.raises(ValueError, match="Workload"):
        env.reset(options={"workload": [1, 2]})


# ---- rewards -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("objective", ["latency", "gpu_time"])
def test_undiscounted_return_is_minus_the_objective(mode, objective):
    env = gym.make("InferMax-Tiny-v0", action_mode=mode, objective=objective)
    for seed in range(3):
        rewards, info, _ = run_episode(env, seed=seed, rng_seed=seed)
        metrics = info["metrics"]
        expected = metrics["sum_ttlt"] if objective == "latency" else metrics["total_gpu_time"]
        assert info["objective"] == expected
        assert sum(rewards) == pytest.approx(-expected, rel=1e-9)


def test_online_workload_return_counts_idle_gaps():
    workload = Workload.from_lists([8, 8, 8], [3, 3, 3], arrival=[0.0, 5.0, 5.01])
    env = gym.make("InferMax-Tiny-v0", action_mode="priority")
    env.reset(options={"workload": workload})
    total, done = 0.0, False
    while not done:
        _, reward, done, _, info = env.step(np.zeros(12, dtype=np.float32))
        total += reward
    assert total == pytest.approx(-info["metrics"]["sum_ttlt"], rel=1e-9)


def test_reward_scale_and_reference_normalisation():
    plain = run_episode(gym.make("InferMax-Tiny-v0"), seed=4)[0]
    scaled = run_episode(gym.make("InferMax-Tiny-v0", reward_scale=0.5), seed=4)[0]
    assert sum(scaled) == pytest.approx(0.5 * sum(plain))
    env = gym.make("InferMax-Tiny-v0", reference="vllm")
    rewards, info, _ = run_episode(env, seed=4)
    reference = info["reference_objective"]
    sim = Simulator(env.unwrapped.sim.workload, LinearCostModel(), TINY_ENGINE)
    assert reference == pytest.approx(objective_value(sim.run(VLLMScheduler()), "latency"))
    assert sum(rewards) == pytest.approx(sum(plain) / reference)
    for same in (VLLMScheduler, VLLMScheduler()):  # a factory or a scheduler object instead of a name
        assert run_episode(gym.make("InferMax-Tiny-v0", reference=same), seed=4)[1]["reference_objective"] == reference


def test_reference_names_resolve_through_the_scheduler_registry():
    env = gym.make("InferMax-Tiny-v0", reference="no_such_scheduler")
    with pytest.raises(ValueError, match="unknown scheduler 'no_such_scheduler'.*registered:.*vllm"):
        env.reset(seed=0)
    with pytest.raises(ValueError, match="reference must be a scheduler name, a scheduler .* got 3"):
        gym.make("InferMax-Tiny-v0", reference=3)


def test_reference_names_resolve_in_a_process_that_never_imported_baselines():
    # Subprocess vector envs and RLlib EnvRunners build envs without importing baselines; the entry point loads it.
    code = ("import sys, gymnasium as gym, infermax_env\n"
            "env = gym.make('InferMax-Tiny-v0', reference='vllm'); env.reset(seed=0)\n"
            "print('baselines' in sys.modules)")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_each_batch_is_priced_once_and_info_carries_its_breakdown():
    from infermax_env import RooflineCostModel

    class CountingRoofline(RooflineCostModel):
        calls = 0

        def breakdown(self, batch):
            CountingRoofline.calls += 1
            return super().breakdown(batch)

    env = gym.make("InferMax-Tiny-v0", cost_model=CountingRoofline("llama-3-8b", "a100-80gb"))
    env.reset(seed=1)
    CountingRoofline.calls = 0
    launches = 0
    for _ in range(5):
        _, _, terminated, _, info = env.step(np.ones(12, dtype=np.int64))
        launches += 1
        assert sum(info["breakdown"].values()) == pytest.approx(info["batch_time"], rel=1e-12)
        if terminated:
            break
    assert CountingRoofline.calls == launches


# ---- actions: masks, repairs, errors, livelock ---------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_three_views_of_the_mask_agree(mode):
    env = gym.make("InferMax-Tiny-v0", action_mode=mode)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=2)
    for _ in range(20):
        mask = env.unwrapped.action_masks()
        assert mask.dtype == bool
        assert np.array_equal(obs["action_mask"], mask) and np.array_equal(info["action_mask"], mask)
        obs, _, terminated, _, info = env.step(random_valid_action(env, rng))
        if terminated:
            break


def test_sequential_mask_is_exact():
    """Every allowed add leads to a feasible batch; every forbidden add of a free slot would be infeasible."""
    env = gym.make("InferMax-Tiny-v0", action_mode="sequential", strict=True)
    rng = np.random.default_rng(1)
    for seed in range(4):
        env.reset(seed=seed)
        base = env.unwrapped
        for _ in range(300):
            mask, win, pending = base.action_masks(), base.window, base.pending
            for slot in range(win.count):
                if pending.in_batch[slot] or pending.evict[slot]:
                    continue
                runs = dict(zip(win.ids[pending.added].tolist(), pending.tokens))
                runs[int(win.ids[slot])] = 1
                probe = Decision.from_dict(runs, win.ids[pending.evict].tolist())
                try:
                    base.sim.clone().step(probe)
                    feasible = True
                except InfeasibleDecisionError:
                    feasible = False
                assert mask[slot] == feasible, (slot, probe)
            _, _, terminated, _, _ = env.step(int(rng.choice(np.flatnonzero(mask))))
            if terminated:
                break
        assert base.sim.done


def test_select_repairs_invalid_choices_or_rejects_them_in_strict_mode():
    workload = Workload.from_lists([4, 4], [3, 3])
    env = gym.make("InferMax-Tiny-v0", invalid_action_penalty=0.25)
    env.reset(options={"workload": workload})
    action = np.zeros(12, dtype=np.int64)
    action[[0, 1]] = 1
    action[5] = 1  # an empty slot
    action[1] = 2  # evicting a waiting request
    action[0] = 1
    _, reward, _, _, info = env.step(action)
    assert info["repairs"]["invalid"] == 2
    assert info["batch"] == {"run_ids": [0], "run_tokens": [4], "evict_ids": []}
    assert reward == pytest.approx(-info["latency_area"] - 0.5)
    strict = gym.make("InferMax-Tiny-v0", strict=True)
    strict.reset(options={"workload": workload})
    with pytest.raises(InvalidActionError, match="evicts non-resident slots \\[1\\].*empty slots \\[5\\]"):
        strict.step(action)


def test_select_takes_decodes_first_then_chunks_prefills_to_the_budget():
    workload = Workload.from_lists([16, 16, 16], [4, 4, 4])
    env = gym.make("InferMax-Tiny-v0")  # C = 32, M = 48
    env.reset(options={"workload": workload})
    _, _, _, _, info = env.step(np.array([1, 1, 1] + [0] * 9))
    assert info["batch"]["run_tokens"] == [16, 16] and info["repairs"]["dropped"] == 1
    _, _, _, _, info = env.step(np.array([1, 1, 1] + [0] * 9))
    # Two decodes first (2 tokens), then request 2's prefill chunked to the memory left: 48 - 32 - 2 = 14.
    assert info["batch"] == {"run_ids": [0, 1, 2], "run_tokens": [1, 1, 14], "evict_ids": []}


def test_priority_evicts_lower_ranked_residents_for_a_higher_ranked_request():
    workload = Workload.from_lists([16, 16, 16], [8, 8, 8])
    env = gym.make("InferMax-Tiny-v0", action_mode="priority")
    env.reset(options={"workload": workload})
    env.step(np.array([1.0, 0.5, -1.0] + [0] * 9, dtype=np.float32))  # prefill 0 and 1 (32 tokens)
    assert env.unwrapped.slot_ids[:3].tolist() == [0, 1, 2]
    # Request 2 (waiting, 16 tokens) now outranks resident 1; after 0's decode only 15 tokens are free, so the
    # lowest-ranked resident (1) is evicted and 2 prefills whole.
    _, _, _, _, info = env.step(np.array([1.0, -1.0, 0.5] + [0] * 9, dtype=np.float32))
    assert info["batch"]["evict_ids"] == [1]
    assert dict(zip(info["batch"]["run_ids"], info["batch"]["run_tokens"])) == {0: 1, 2: 16}


@pytest.mark.parametrize("mode, action, message", [
    ("select", np.zeros(11, dtype=np.int64), "shape"),
    ("select", np.zeros(12, dtype=np.float32), "integers"),
    ("select", np.full(12, 3), "0 \\(leave\\)"),
    ("priority", np.zeros(3, dtype=np.float32), "shape"),
    ("priority", np.array(["a"] * 12), "real scores"),
    ("sequential", 25, "\\[0, 24\\]"),
    ("sequential", np.array([1, 2]), "one integer"),
    ("sequential", 1.5, "one integer"),
])
def test_malformed_actions_are_clear_errors(mode, action, message):
    env = gym.make("InferMax-Tiny-v0", action_mode=mode)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.unwrapped.step(action)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_priority_scores_are_a_value_error_naming_them(value):
    env = gym.make("InferMax-Tiny-v0", action_mode="priority")
    env.reset(seed=0)
    scores = np.zeros(12, dtype=np.float32)
    scores[1] = value
    with pytest.raises(ValueError, match=rf"priority scores must be finite .* got {value} for slot 1"):
        env.step(scores)


def test_priority_nan_scores_are_repaired_or_rejected():
    env = gym.make("InferMax-Tiny-v0", action_mode="priority")
    env.reset(seed=0)
    scores = np.full(12, np.nan, dtype=np.float32)
    _, _, _, _, info = env.step(scores)
    assert info["repairs"]["invalid"] == env.unwrapped.sim.num_requests
    strict = gym.make("InferMax-Tiny-v0", action_mode="priority", strict=True)
    strict.reset(seed=0)
    with pytest.raises(InvalidActionError, match="NaN"):
        strict.step(scores)


def test_masked_sequential_action_launches_the_batch_built_so_far():
    env = gym.make("InferMax-Tiny-v0", action_mode="sequential")
    env.reset(options={"workload": Workload.from_lists([4, 5], [2, 2])})
    _, reward, _, _, info = env.step(0)
    assert reward == 0.0 and not info["launched"]
    _, _, _, _, info = env.step(0)  # slot 0 is already in the batch: masked, so the batch launches
    assert info["launched"] and info["repairs"]["invalid"] == 1
    assert info["batch"]["run_ids"] == [0]


def test_livelock_rule_runs_the_earliest_request_and_never_idles():
    workload = Workload.from_lists([6, 6, 6], [2, 2, 2], arrival=[0.0, 0.0, 30.0])
    env = gym.make("InferMax-Tiny-v0", invalid_action_penalty=1.0)
    env.reset(options={"workload": workload})
    _, reward, _, _, info = env.step(np.zeros(12, dtype=np.int64))
    assert info["repairs"]["livelock"] == 1 and info["idle_time"] == 0.0
    assert info["batch"] == {"run_ids": [0], "run_tokens": [6], "evict_ids": []}
    assert reward == pytest.approx(-info["latency_area"] - 1.0)
    strict = gym.make("InferMax-Tiny-v0", strict=True)
    strict.reset(options={"workload": workload})
    with pytest.raises(InvalidActionError, match="livelock"):
        strict.step(np.zeros(12, dtype=np.int64))


def test_livelock_rule_evicts_the_newest_resident_when_memory_is_full():
    # Two residents hold all 48 tokens (24 each, mid-prefill); evicting nothing and running nothing must still
    # progress: request 0 runs after request 1 (the newest) is evicted.
    env = gym.make("InferMax-Tiny-v0", window=2)
    env.reset(options={"workload": Workload.from_lists([30, 30], [1, 1])})
    env.unwrapped.sim.step(Decision([0, 1], [24, 8]))
    env.unwrapped.sim.step(Decision([1], [16]))
    env.unwrapped._new_iteration()
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.int64))
    assert info["batch"] == {"run_ids": [0], "run_tokens": [6], "evict_ids": [1]}


# ---- observation ------------------------------------------------------------------------------------------
def test_slots_hold_residents_then_waiting_requests_in_arrival_order():
    workload = Workload.from_lists([4, 4, 4, 4], [5, 5, 5, 5])
    env = gym.make("InferMax-Tiny-v0", action_mode="sequential")
    env.reset(options={"workload": workload})
    for action in (2, 3, 24):  # run requests 2 and 3, launch
        obs, *_ = env.step(action)
    assert env.unwrapped.slot_ids[:5].tolist() == [2, 3, 0, 1, -1]
    requests = obs["requests"]
    assert requests[:2, REQUEST_INDEX["in_memory"]].tolist() == [1, 1]
    assert requests[:4, REQUEST_INDEX["decoding"]].tolist() == [1, 1, 0, 0]
    assert requests[4:].sum() == 0 and obs["slot_mask"].tolist() == [1] * 4 + [0] * 8
    assert obs["global"][GLOBAL_INDEX["kv_used"]] == pytest.approx(8 / 48)
    obs, *_ = env.step(12)  # mark slot 0 (request 2) for eviction: the observation shows the pending batch
    assert obs["requests"][0, REQUEST_INDEX["evict_pending"]] == 1
    assert obs["global"][GLOBAL_INDEX["kv_used"]] == pytest.approx(4 / 48)


def test_features_scale_into_unit_range_and_respect_oracle_and_predictor():
    class HalfPrompt:
        def predict(self, sim, ids):
            return sim.prompt_len[ids] / 2

    env = gym.make("InferMax-v0", oracle=False)
    obs, _ = env.reset(seed=1)
    assert obs["requests"][:, REQUEST_INDEX["true_output_len"]].max() == 0
    assert obs["requests"][:, REQUEST_INDEX["predicted_output_len"]].max() == 0
    oracle = gym.make("InferMax-v0", oracle=True, predictor=HalfPrompt())
    obs, _ = oracle.reset(seed=1)
    sim, ids = oracle.unwrapped.sim, oracle.unwrapped.slot_ids
    live = ids[ids >= 0]
    scale = np.log1p(100_000)
    true = obs["requests"][:len(live), REQUEST_INDEX["true_output_len"]]
    assert np.allclose(true, np.log1p(sim.output_len[live]) / scale, atol=1e-6)
    predicted = obs["requests"][:len(live), REQUEST_INDEX["predicted_output_len"]]
    assert np.allclose(predicted, np.log1p(sim.prompt_len[live] / 2) / scale, atol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(200):
        obs, *_ = oracle.step(random_valid_action(oracle, rng))
        assert oracle.observation_space.contains(obs)


# ---- rendering --------------------------------------------------------------------------------------------
def test_render_modes():
    text_env = gym.make("InferMax-Tiny-v0", render_mode="ansi")
    text_env.reset(seed=0)
    text_env.step(np.ones(12, dtype=np.int64))
    text = text_env.render()
    assert "KV [" in text and "last batch" in text and "slot  request" in text
    image_env = gym.make("InferMax-Tiny-v0", render_mode="rgb_array")
    image_env.reset(seed=0)
    image_env.step(np.ones(12, dtype=np.int64))
    image = image_env.render()
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.std() > 0


def test_human_render_mode_prints_the_text_view(capsys):
    env = gym.make("InferMax-Tiny-v0", render_mode="human")  # no HumanRendering wrapper (nor pygame) involved
    assert env.unwrapped.render_mode == "human"
    env.reset(seed=0)
    env.step(np.ones(12, dtype=np.int64))
    assert env.render() is None
    printed = capsys.readouterr().out
    assert printed.count("KV [") == 2 and "last batch" in printed
    with pytest.warns(UserWarning, match="not in the possible render_modes"), \
            pytest.raises(ValueError, match="render_mode must be one of .* got 'rgb'"):
        gym.make("InferMax-Tiny-v0", render_mode="rgb")


# ---- checkers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["InferMax-Tiny-v0", "InferMax-v0"])
@pytest.mark.parametrize("mode", MODES)
def test_gymnasium_and_sb3_env_checkers_pass(env_id, mode):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id, action_mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 advises flattening the (K, F) requests Box; it is still accepted
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
