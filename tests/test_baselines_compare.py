"""The comparison CLI: outputs, parallel runs, clear errors."""

from __future__ import annotations

import csv
import json

import pytest

from baselines.compare import RunSetup, SchedulerSpec, main, run_many
from infermax_env import EngineConfig, LinearCostModel, Workload

SMALL = ["--synthetic", "40", "--rate", "4", "--prompt-median", "200", "--output-median", "40", "-M", "6000",
         "-C", "2048", "--no-progress"]


def test_cli_writes_table_csv_json_and_plots(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(SMALL + ["--schedulers", "vllm", "sarathi:chunk_size=512", "--rate-scale", "1", "2",
                         "--slo-ttft", "5", "--jobs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sarathi:chunk_size=512" in printed and "SLO" in printed
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["scheduler"], r["config"]) for r in rows] == [
        ("vllm", "rate x1"), ("sarathi:chunk_size=512", "rate x1"), ("vllm", "rate x2"),
        ("sarathi:chunk_size=512", "rate x2")]
    assert all(float(r["finished"]) == 40 for r in rows)
    data = json.loads((out / "results.json").read_text())
    assert data["setup"]["engine"]["kv_capacity"] == 6000 and len(data["runs"]) == 4
    assert (out / "ttlt_cdf.png").stat().st_size > 0 and (out / "bars.png").stat().st_size > 0


def test_parallel_runs_match_serial_runs():
    workload = Workload.from_lists([50, 80, 30, 120, 60], [20, 5, 40, 10, 30], [0, 0.1, 0.2, 0.3, 0.4])
    setup = RunSetup(workload, LinearCostModel(), EngineConfig(kv_capacity=300, token_budget=128))
    specs = [SchedulerSpec.parse(name) for name in ("vllm", "infermax", "srpt")]
    serial = run_many(specs, [setup], jobs=1, progress=False)
    parallel = run_many(specs, [setup], jobs=2, progress=False)
    assert [r.summary for r in serial] == [r.summary for r in parallel]


@pytest.mark.parametrize("argv, message", [
    (["--schedulers", "fifo"], "unknown scheduler 'fifo'"),
    (["--schedulers", "vllm:chunk_size=4"], "does not accept"),
    (["--schedulers", "sort_output", "--hide-output-lengths"], "oracle schedulers"),
    (["--cost", "linear", "--model", "llama-3-8b", "--tp", "1"], "--cost linear has coefficients"),
    (["--window", "50:10"], "END > START"),
])
def test_cli_errors_name_the_bad_value(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(SMALL + argv)
    assert message in capsys.readouterr().err
