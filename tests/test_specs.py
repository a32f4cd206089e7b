import pytest

from infermax_env import (Deployment, DeploymentError, EngineConfig, GPUSpec, ModelSpec, get_gpu, get_model,
                          list_gpus, list_models, register_gpu)

REQUIRED_GPUS = {"a100-80gb", "a100-40gb", "h100-sxm", "h100-pcie", "h200", "a40", "l40s"}
REQUIRED_MODELS = {"llama-3-8b", "llama-3-70b", "llama-2-7b", "llama-2-70b", "mistral-7b", "qwen-72b"}


def test_registries_hold_the_required_entries():
    assert REQUIRED_GPUS <= set(list_gpus()) and REQUIRED_MODELS <= set(list_models())
    assert get_gpu("h100-sxm").peak_flops == 989e12 and get_gpu("a40").memory_bandwidth == 0.696e12
    with pytest.raises(ValueError, match="unknown GPU 'b200'"):
        get_gpu("b200")
    with pytest.raises(ValueError, match="unknown model"):
        get_model("gpt-5")


@pytest.mark.parametrize("name, params_b, kv_kib", [
    ("llama-3-8b", 8.03, 128), ("llama-3-70b", 70.55, 320), ("llama-2-7b", 6.74, 512), ("llama-2-70b", 68.98, 320),
])
def test_derived_sizes_match_reference_arithmetic(name, params_b, kv_kib):
    model = get_model(name)
    assert abs(model.num_params / 1e9 - params_b) < 0.02
    assert model.kv_bytes_per_token == kv_kib * 1024
    assert model.param_bytes == 2 * model.num_params
    assert model.linear_flops_per_token == 2 * model.num_layers * model.params_per_layer


def test_from_hf_config():
    config = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
              "intermediate_size": 14336, "vocab_size": 128256, "hidden_act": "silu", "model_type": "llama"}
    assert ModelSpec.from_hf_config(config, name="llama-3-8b") == get_model("llama-3-8b")
    with pytest.raises(ValueError, match="missing"):
        ModelSpec.from_hf_config({"hidden_size": 1})
    with pytest.raises(ValueError, match="not a multiple"):
        ModelSpec("bad", 2, 64, 6, 4, 128, 100)


def test_user_defined_gpu_and_deployment_capacity():
    gpu = GPUSpec("toy-24gb", 100e12, 1e12, 24e9, 50e9)
    register_gpu(gpu, overwrite=True)
    deployment = Deployment("llama-3-8b", "toy-24gb")
    expected = (0.9 * 24e9 - get_model("llama-3-8b").param_bytes - 2 * 1024**3) // (128 * 1024)
    assert deployment.kv_capacity_tokens == expected
    assert EngineConfig.for_deployment(deployment, token_budget=512).kv_capacity == expected
    with pytest.raises(ValueError, match="peak_flops must be positive"):
        GPUSpec("broken", 0, 1, 1, 1)


def test_model_that_does_not_fit_is_a_clear_error():
    with pytest.raises(DeploymentError, match=r"llama-3-70b does not fit on 1 x a100-80gb: weights need 131\.4 GiB"):
        Deployment("llama-3-70b", "a100-80gb", tensor_parallel=1)
    assert Deployment("llama-3-70b", "a100-80gb", tensor_parallel=4).kv_capacity_tokens > 100_000
    with pytest.raises(DeploymentError, match="tensor_parallel"):
        Deployment("llama-3-8b", "a100-80gb", tensor_parallel=0)


@pytest.mark.parametrize("kwargs", [dict(kv_capacity=0), dict(token_budget=-1), dict(block_size=2.5),
                                    dict(kv_capacity=4, block_size=8)])
def test_engine_config_validation(kwargs):
    with pytest.raises(DeploymentError):
        EngineConfig(**kwargs)
