"""Smoke tests: each example in examples/ runs as is, for a few hundred steps, as a script.

An example whose library is not installed is skipped with the install line in the reason."""

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = {
    "cleanrl_masked_ppo.py": (["torch"], "pip install -e '.[sb3]'",
                              ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64"], "iteration 2/2"),
    "torchrl_masked_ppo.py": (["torchrl"], "pip install -e '.[torchrl]'",
                              ["--total-frames", "400", "--frames-per-batch", "200", "--minibatch-size", "100",
                               "--epochs", "1"], "400 frames"),
    "tianshou_ppo.py": (["tianshou"], "pip install -e '.[tianshou]'",
                        ["--epochs", "1", "--epoch-steps", "300", "--collect-steps", "150", "--batch-size", "75",
                         "--num-envs", "2"], "best test return"),
    "rllib_masked_ppo.py": (["ray.rllib"], "pip install -e '.[rllib]'",
                            ["--iterations", "1", "--num-env-runners", "2", "--train-batch-size", "200",
                             "--minibatch-size", "100", "--num-epochs", "1"], "iteration 1:"),
}


def installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs(script):
    modules, install, arguments, expected = EXAMPLES[script]
    missing = [m for m in modules if not installed(m)]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}: {install}")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), *arguments], capture_output=True,
                            text=True, timeout=600, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout, result.stdout[-2000:]
