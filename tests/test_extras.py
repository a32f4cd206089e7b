"""Dependencies by need: a missing extra is named with its install line; specs of settings given by name are JSON."""

import json

import gymnasium as gym
import pytest

import baselines  # noqa: F401  (registers the scheduler names used as reference="vllm")
import infermax_env  # noqa: F401
from infermax_env.extras import EXTRAS, MissingExtraError, require
from tests.conftest import run_python


@pytest.mark.parametrize("blocked, statement, extra", [
    ("sb3_contrib", "import agents", "sb3"),
    ("ortools", "import baselines.optimal", "optimal"),
])
def test_a_missing_extra_names_itself_and_its_install_line(blocked, statement, extra):
    code = f"import sys; sys.modules[{blocked!r}] = None\n{statement}"
    result = run_python(code)
    assert result.returncode != 0
    assert "MissingExtraError" in result.stderr and f"[{extra}] extra" in result.stderr
    assert f"pip install 'infermax-env[{extra}]'" in result.stderr


def test_the_core_needs_no_extra():
    blocked = sorted({module for modules in EXTRAS.values() for module in modules})
    code = (f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
            "import gymnasium as gym, infermax_env, baselines\n"
            "from infermax_env.wrappers import FlatObservation\n"
            "env = FlatObservation(gym.make('InferMax-Tiny-v0'))\nenv.reset(seed=0)\n"
            "vec = gym.make_vec('InferMax-Tiny-v0', 2)\nvec.reset(seed=0)\nprint('ok')")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_require_checks_its_arguments():
    require("sb3", "this test")  # installed by .[dev]
    with pytest.raises(ValueError, match="unknown extra 'gpu'"):
        require("gpu", "x")
    assert issubclass(MissingExtraError, ImportError)


def test_specs_with_settings_by_name_round_trip_through_json():
    env = gym.make("InferMax-Tiny-v0", objective="gpu_time", reference="vllm", window=8, action_mode="priority")
    text = env.spec.to_json()
    assert json.loads(text)["kwargs"]["reference"] == "vllm"
    again = gym.make(gym.envs.registration.EnvSpec.from_json(text))
    assert again.spec.kwargs == env.spec.kwargs and again.action_space == env.action_space
    assert again.unwrapped.config.objective == "gpu_time" and again.unwrapped.config.window == 8
    vector = gym.make_vec("InferMax-Tiny-v0", 2, vectorization_mode="vector_entry_point", objective="gpu_time")
    assert json.loads(vector.spec.to_json())["kwargs"]["objective"] == "gpu_time"
