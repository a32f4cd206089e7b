"""Smoke tests: each example in examples/ and the quickstart notebook run as is, for a few hundred steps, as
scripts.

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
                        ["--epochs", "1", "--epoch-steps", "150", "--collect-steps", "150", "--batch-size", "75",
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


def run_script(path: Path, arguments=(), **environment: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", **environment,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, str(path), *arguments], capture_output=True, text=True, timeout=600,
                            cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs(script):
    modules, install, arguments, expected = EXAMPLES[script]
    missing = [m for m in modules if not installed(m)]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}: {install}")
    stdout = run_script(ROOT / "examples" / script, arguments)
    assert expected in stdout, stdout[-2000:]


def test_quickstart_notebook_runs_as_a_script():
    stdout = run_script(ROOT / "notebooks" / "quickstart.py", QUICKSTART_STEPS="256", QUICKSTART_INSTANCES="2")
    assert "optimum proven on 2/2 instances" in stdout, stdout[-2000:]
    assert "MaskablePPO: mean gap to the optimum" in stdout
