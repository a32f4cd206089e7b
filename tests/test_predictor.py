"""The online output-length predictor and the Gittins index over its distributions."""

from __future__ import annotations

import numpy as np
import pytest

from baselines import OutputLengthPredictor, make_scheduler
from baselines.gittins import gittins_index, hybrid_cost
from baselines.predictor import OutputDistribution
from infermax_env import EngineConfig, LinearCostModel, Simulator, Workload


def two_class_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Short prompts (~50 tokens) give ~20-token outputs, long prompts (~3000) give ~400-token outputs."""
    long = rng.random(n) < 0.5
    prompt = np.where(long, rng.integers(2500, 3500, n), rng.integers(40, 60, n))
    output = np.where(long, rng.integers(350, 450, n), rng.integers(15, 25, n))
    return prompt, output


def test_cold_start_predicts_the_default():
    predictor = OutputLengthPredictor(default_output=100)
    prediction = predictor.distribution_for(np.array([10, 5000])).quantile(0.5)
    assert np.all((prediction >= 90) & (prediction <= 110))  # inside the bin holding 100


def test_predictor_learns_each_prompt_class():
    rng = np.random.default_rng(0)
    predictor = OutputLengthPredictor()
    prompt, output = two_class_data(rng, 2000)
    predictor.update(prompt, None, output)
    assert predictor.num_observed == 2000
    median = predictor.distribution_for(np.array([50, 3000])).quantile(0.5)
    assert 15 <= median[0] <= 25 and 350 <= median[1] <= 450


def test_quantiles_cover_their_nominal_share_on_held_out_data():
    rng = np.random.default_rng(1)
    prompt = np.exp(rng.normal(6.5, 1.0, 6000)).astype(np.int64) + 1
    output = np.maximum(1, (prompt ** 0.5 * np.exp(rng.normal(0.0, 0.8, 6000)))).astype(np.int64)
    predictor = OutputLengthPredictor()
    predictor.update(prompt[:4000], None, output[:4000])
    distribution = predictor.distribution_for(prompt[4000:])
    low, high = distribution.quantile(0.1), distribution.quantile(0.9)
    covered = np.mean((output[4000:] >= low) & (output[4000:] <= high))
    assert 0.74 <= covered <= 0.86
    below_median = np.mean(output[4000:] <= distribution.quantile(0.5))
    assert 0.44 <= below_median <= 0.56


def test_distribution_is_conditioned_on_what_was_generated():
    predictor = OutputLengthPredictor()
    predictor.update(np.full(100, 100), None, np.arange(1, 101))
    distribution = predictor.distribution_for(np.full(3, 100), generated=np.array([0, 50, 5000]))
    np.testing.assert_allclose(distribution.probs.sum(axis=1), 1.0)
    median = distribution.quantile(0.5)
    assert 45 <= median[0] <= 55 and 70 <= median[1] <= 80  # given O > 50, the median of U(51, 100) is ~75
    assert median[2] == 5001  # beyond everything seen: one more token
    assert (distribution.quantile(0.01) > np.array([0, 50, 5000])).all()


def test_feature_column_refines_the_classes():
    predictor = OutputLengthPredictor(feature_column=0, num_categories=2)
    prompt = np.full(400, 500)
    category = np.repeat([[0.0], [1.0]], 200, axis=0)
    output = np.where(category[:, 0] == 0, 10, 300)
    predictor.update(prompt, category, output)
    median = predictor.distribution_for(np.array([500, 500]), np.array([[0.0], [1.0]])).quantile(0.5)
    assert median[0] < 12 and median[1] > 250


def test_predictor_reads_output_lengths_of_finished_requests_only():
    """Unfinished requests' output lengths are poisoned while the predictor runs: any read of one would reach
    ``update``, which rejects lengths < 1."""
    rng = np.random.default_rng(2)
    prompt, output = two_class_data(rng, 60)
    sim = Simulator(Workload.from_lists(prompt, output, np.sort(rng.random(60) * 5)), LinearCostModel(),
                    EngineConfig(kv_capacity=20_000, token_budget=4096), oracle=False)
    scheduler = make_scheduler("sagesched")
    scheduler.reset(sim)
    predictor = OutputLengthPredictor()
    true_lengths = sim.output_len.copy()
    observed = 0
    while not sim.done:
        sim.output_len[:] = np.where(sim.finished, true_lengths, -1)
        try:
            observed += predictor.observe_finished(sim)
            ids = sim.resident_ids()
            predicted = predictor.predict(sim, ids)
            decision = scheduler.decide(sim)
        finally:
            sim.output_len[:] = true_lengths
        assert (predicted > sim.generated[ids]).all()
        sim.step(decision)
    observed += predictor.observe_finished(sim)
    assert observed == predictor.num_observed == 60


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="bins_per_octave"):
        OutputLengthPredictor(bins_per_octave=0)
    with pytest.raises(ValueError, match="output lengths must be >= 1"):
        OutputLengthPredictor().update([5], None, [0])
    with pytest.raises(ValueError, match="quantile q must be in"):
        OutputLengthPredictor().distribution_for(np.array([5])).quantile(1.0)


# ---- Gittins index -------------------------------------------------------------------------------------
def brute_force_gittins(sizes: np.ndarray, probs: np.ndarray) -> float:
    """sup over a fine grid of d of P(S <= d) / E[min(S, d)]."""
    best = 0.0
    for d in np.linspace(1e-6, sizes.max(), 20001):
        best = max(best, probs[sizes <= d].sum() / (probs * np.minimum(sizes, d)).sum())
    return best


def point_distribution(lower: list[int], upper: list[int], probs: list[float]) -> OutputDistribution:
    return OutputDistribution(np.array([lower]), np.array([upper]), np.array([probs]))


def test_gittins_index_matches_brute_force():
    distribution = point_distribution([1, 10, 100], [1, 10, 100], [0.5, 0.3, 0.2])
    index = gittins_index(distribution, np.array([100]), np.array([0]), token_budget=1000, kv_capacity=10_000)
    sizes = hybrid_cost(100, np.array([1, 10, 100]), 1000, 10_000)
    assert index[0] == pytest.approx(brute_force_gittins(sizes, np.array([0.5, 0.3, 0.2])), rel=1e-3)


def test_gittins_index_of_a_known_size_is_its_inverse_and_grows_with_attained_service():
    known = point_distribution([40], [40], [1.0])
    fresh = gittins_index(known, np.array([10]), np.array([0]), 100, 1000)
    assert fresh[0] == pytest.approx(1.0 / hybrid_cost(10, 40, 100, 1000))
    later = gittins_index(known, np.array([10]), np.array([30]), 100, 1000)
    assert later[0] == pytest.approx(1.0 / (hybrid_cost(10, 40, 100, 1000) - hybrid_cost(10, 30, 100, 1000)))
    assert later[0] > fresh[0]


def test_gittins_prefers_a_likely_short_job_over_a_surely_medium_one():
    """A job that is 1 token with probability 0.9 (else 1000) outranks a job of surely 50 tokens."""
    gamble = point_distribution([1, 1000], [1, 1000], [0.9, 0.1])
    sure = point_distribution([1, 50], [1, 50], [0.0, 1.0])
    both = OutputDistribution(np.vstack([gamble.lower, sure.lower]), np.vstack([gamble.upper, sure.upper]),
                              np.vstack([gamble.probs, sure.probs]))
    index = gittins_index(both, np.array([10, 10]), np.array([0, 0]), 1000, 100_000)
    assert index[0] > index[1]


def test_predictor_feeds_the_env_observation_and_learns_through_predict():
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("infermax_env.envs")
    from baselines.policy import SchedulerPolicy
    from infermax_env.envs.observation import REQUEST_INDEX

    predictor = OutputLengthPredictor(default_output=3)
    env = gym.make("InferMax-Tiny-v0", action_mode="sequential", predictor=predictor)
    policy = SchedulerPolicy(make_scheduler("sarathi"), env)
    obs, _ = env.reset(seed=4)
    column = REQUEST_INDEX["predicted_output_len"]
    seen = []
    terminated = False
    while not terminated:
        seen.append(obs["requests"][:, column].max())
        action, _ = policy.predict(obs)
        obs, _, terminated, _, info = env.step(action)
    assert min(seen) > 0  # every step shows predictions for the requests in the window
    finished = info["metrics"]["finished"]
    assert 0 < predictor.num_observed < finished  # learned online, through predict alone
    predictor.observe_finished(env.unwrapped.sim)
    assert predictor.num_observed == finished
