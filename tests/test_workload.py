import numpy as np
import pytest

from infermax_env import (Empirical, Fixed, LogNormal, SyntheticGenerator, TraceWindowGenerator, Uniform, Workload,
                          WorkloadError, load_azure_trace)
from infermax_env.instances import tiny_setting


def write(tmp_path, text, name="trace.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_both_azure_column_forms(tmp_path):
    vidur = write(tmp_path, "arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,10,3\n0.5,20,4\n")
    w = Workload.from_csv(vidur)
    assert w.arrival.tolist() == [0.0, 0.5] and w.prompt_len.tolist() == [10, 20] and w.output_len.tolist() == [3, 4]
    original = write(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                               "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n",
                     "orig.csv")
    w = Workload.from_csv(original)
    assert w.arrival[0] == 0.0 and abs(w.arrival[1] - 4.314579) < 1e-6 and w.output_len.tolist() == [44, 109]


def test_user_csv_with_column_mapping(tmp_path):
    path = write(tmp_path, "t,in,out,extra\n0,5,2,x\n1,6,3,y\n")
    w = Workload.from_csv(path, columns={"arrival": "t", "prompt": "in", "output": "out"})
    assert len(w) == 2 and w.prompt_len.tolist() == [5, 6]


@pytest.mark.parametrize("text, message", [
    ("a,b,c\n1,2,3\n", "missing columns"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,abc,3\n", r"line 2: num_prefill_tokens='abc' is not a number"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,3\n1,-4,3\n", r"line 3: num_prefill_tokens='-4' must be"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,0\n", r"line 2: num_decode_tokens='0' must be"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,2.5\n", r"num_decode_tokens='2.5' must be an integer"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n1.0,5,3\n0.5,5,3\n", r"line 3: arrival times are not sorted"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\nx,5,3\n", r"line 2: arrived_at='x' is not a number"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5\n", r"line 2: expected 3 columns"),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n", "no requests"),
    ("", "empty"),
])
def test_malformed_trace_errors_name_file_line_and_value(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(WorkloadError, match=message) as info:
        Workload.from_csv(path)
    assert str(path) in str(info.value)


def test_missing_file_and_bad_arrays():
    with pytest.raises(WorkloadError, match="does not exist"):
        Workload.from_csv("/nonexistent/trace.csv")
    with pytest.raises(WorkloadError, match="not sorted"):
        Workload.from_lists([1, 1], [1, 1], arrival=[2.0, 1.0])
    with pytest.raises(WorkloadError, match="prompt_len of request 1 is 0"):
        Workload.from_lists([1, 0], [1, 1])
    with pytest.raises(WorkloadError, match="different lengths"):
        Workload.from_lists([1, 2], [1])
    with pytest.raises(WorkloadError, match="must be numeric"):
        Workload.from_lists(["a"], [1])


def test_window_rate_scaling_and_subsets():
    w = Workload.from_lists([1, 2, 3, 4], [1, 1, 1, 1], arrival=[0, 1, 2, 3], features=np.arange(4.0))
    win = w.window(1, 3)
    assert win.arrival.tolist() == [0, 1] and win.prompt_len.tolist() == [2, 3] and win.request_id.tolist() == [1, 2]
    assert win.features[:, 0].tolist() == [1, 2]
    assert w.scale_rate(2).arrival.tolist() == [0, 0.5, 1, 1.5]
    assert w.all_at_zero().arrival.tolist() == [0, 0, 0, 0]
    with pytest.raises(WorkloadError, match="rate scale factor must be positive"):
        w.scale_rate(0)


@pytest.mark.parametrize("arrival", ["poisson", "gamma", "offline"])
def test_synthetic_generators_are_seeded(arrival):
    gen = SyntheticGenerator(num_requests=(5, 20), prompt=LogNormal(100, 0.8), output=Uniform(1, 50),
                             arrival=arrival, rate=3.0, cv=2.0)
    a, b = gen(np.random.default_rng(7)), gen(np.random.default_rng(7))
    c = gen(np.random.default_rng(8))
    assert np.array_equal(a.arrival, b.arrival) and np.array_equal(a.prompt_len, b.prompt_len)
    assert not (len(a) == len(c) and np.array_equal(a.prompt_len, c.prompt_len))
    assert 5 <= len(a) <= 20 and a.prompt_len.min() >= 1 and np.all(np.diff(a.arrival) >= 0)


def test_poisson_rate_is_respected():
    w = SyntheticGenerator(num_requests=20_000, arrival="poisson", rate=4.0)(np.random.default_rng(0))
    assert abs(len(w) / w.duration - 4.0) < 0.1


def test_length_distributions():
    rng = np.random.default_rng(0)
    assert Fixed(7).sample(rng, 3).tolist() == [7, 7, 7]
    assert set(Empirical([3, 9]).sample(rng, 100).tolist()) == {3, 9}
    draws = Uniform(2, 4).sample(rng, 1000)
    assert draws.min() == 2 and draws.max() == 4
    with pytest.raises(WorkloadError):
        Uniform(5, 2)
    with pytest.raises(WorkloadError):
        SyntheticGenerator(arrival="bursty")


def test_tiny_setting_samples_reproducibly():
    setting = tiny_setting()
    a, b = setting.sample(3), setting.sample(np.random.default_rng(3))
    assert np.array_equal(a.prompt_len, b.prompt_len) and 4 <= len(a) <= 12
    assert np.all(a.prompt_len + a.output_len - 1 <= setting.engine.kv_capacity)


def test_azure_traces_load_with_documented_statistics(trace_dir):
    conv = load_azure_trace("conv", trace_dir).summary()
    assert conv["requests"] == 19366 and conv["prompt_max"] == 14050 and conv["output_max"] == 1000
    assert abs(conv["prompt_mean"] - 1155) < 1 and abs(conv["output_mean"] - 211) < 1
    code = load_azure_trace("code", trace_dir).summary()
    assert code["requests"] == 8819 and abs(code["prompt_mean"] - 2048) < 1 and code["output_median"] == 13


def test_trace_window_generator(trace_dir):
    trace = load_azure_trace("conv", trace_dir)
    gen = TraceWindowGenerator(trace, num_requests=100, rate_scale=2.0)
    w = gen(np.random.default_rng(1))
    assert len(w) == 100 and w.arrival[0] == 0.0
    assert np.array_equal(w.arrival, gen(np.random.default_rng(1)).arrival)
    with pytest.raises(WorkloadError, match="num_requests"):
        TraceWindowGenerator(trace, num_requests=10**6)


@pytest.mark.parametrize("value", [1e19, 2**63, np.uint64(2**64 - 1), 2**40 + 1])
def test_lengths_that_would_overflow_are_rejected_naming_the_value(value):
    with pytest.raises(WorkloadError, match="prompt_len of request 0 is .*lengths must be integers in"):
        Workload.from_lists([value], [2])


def test_a_csv_length_that_would_overflow_is_rejected_with_its_line(tmp_path):
    path = write(tmp_path, f"arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,{2**63},3\n")
    with pytest.raises(WorkloadError, match=rf"line 2: num_prefill_tokens='{2**63}' must be an integer in"):
        Workload.from_csv(path)


def test_numpy_integer_lengths_are_accepted():
    w = Workload.from_lists(np.array([3, 4], dtype=np.int64), [np.int32(2), np.uint8(1)])
    assert w.prompt_len.tolist() == [3, 4] and w.output_len.tolist() == [2, 1]


def test_a_non_utf8_csv_names_the_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,10,3 caf\xe9\n".encode("latin-1"))
    with pytest.raises(WorkloadError, match=r"latin1\.csv: not a UTF-8 text file"):
        Workload.from_csv(path)


def test_a_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfarrived_at,num_prefill_tokens,num_decode_tokens\n0.0,10,3\n")
    assert Workload.from_csv(path).prompt_len.tolist() == [10]


def test_engine_limits_accept_numpy_integers_and_reject_overflow():
    from infermax_env import EngineConfig
    from infermax_env.errors import DeploymentError

    config = EngineConfig(kv_capacity=np.int64(100), token_budget=np.int32(16))
    assert config.kv_capacity == 100 and type(config.kv_capacity) is int
    with pytest.raises(DeploymentError, match=r"kv_capacity=10{30} is too large"):
        EngineConfig(kv_capacity=10**30)
    with pytest.raises(DeploymentError, match="must be a positive integer, got True"):
        EngineConfig(kv_capacity=True)


def test_the_oversized_request_message_explains_block_rounding():
    from infermax_env import EngineConfig, LinearCostModel, Simulator

    blocky = EngineConfig(kv_capacity=9, token_budget=16, block_size=4)
    with pytest.raises(WorkloadError, match=r"9 KV tokens, which take 3 blocks of 4 \(12 tokens\), more than the 2 "
                                            r"whole blocks \(8 tokens\) the KV capacity M = 9 holds"):
        Simulator(Workload.from_lists([5], [5]), LinearCostModel(), blocky)
    with pytest.raises(WorkloadError, match="10 KV tokens, more than the KV capacity M = 9"):
        Simulator(Workload.from_lists([5], [6]), LinearCostModel(), EngineConfig(kv_capacity=9, token_budget=16))


def test_infermax_traces_is_authoritative(tmp_path, monkeypatch):
    from infermax_env.workload import default_trace_dir

    monkeypatch.setenv("INFERMAX_TRACES", str(tmp_path))
    assert default_trace_dir() == tmp_path
    monkeypatch.setenv("INFERMAX_TRACES", str(tmp_path / "absent"))
    assert default_trace_dir() is None  # never falls back to ../shared: the suite can run as without it
