"""Client latency: every backend and batch size measured, FLOP/s tied to the client's FLOPs."""

from __future__ import annotations

import json

import pytest

from noisyarl.builders import untrained_defence
from noisyarl.cli import main
from noisyarl.deploy.latency import (
    ALL_BACKENDS,
    BACKENDS,
    INT8_BACKEND,
    PEAK_FOOTNOTE,
    latency_of_methods,
    latency_of_run,
    measure_latency,
    time_calls,
)
from noisyarl.evaluation.cost import measure_client_cost
from noisyarl.methods import METHODS


def test_time_calls_runs_warmup_then_timed_calls():
    calls = []
    times = time_calls(lambda: calls.append(1), runs=7, warmup=3)
    assert len(calls) == 10 and len(times) == 7 and all(t >= 0 for t in times)


def test_report_covers_every_backend_and_batch_and_is_consistent():
    client = untrained_defence("noisy_arl", image_size=32, split=1, sigma=1.0).client
    report = measure_latency({"rn18_1": client}, 32, batch_sizes=(1, 4), runs=3, warmup=1,
                             progress=False)
    assert [(r.backend, r.batch_size) for r in report.rows] == [
        (backend, batch) for backend in BACKENDS for batch in (1, 4)]
    flops = measure_client_cost(client, (3, 32, 32)).flops
    for row in report.rows:
        assert 0 < row.median_ms <= row.p90_ms
        assert row.images_per_second == pytest.approx(1e3 * row.batch_size / row.median_ms)
        assert row.gflop_per_second == pytest.approx(
            flops * row.batch_size / (row.median_ms / 1e3) / 1e9)
        assert row.fraction_of_peak == pytest.approx(
            row.gflop_per_second / report.peak_gflop_per_second)
    assert report.peak_gflop_per_second > 0 and "| rn18_1 | onnxruntime | 4 |" in report.markdown()


def test_cli_measures_every_defence_and_writes_json(tmp_path, capsys):
    out = tmp_path / "latency.json"
    assert main(["latency", "--method", "all", "--image-size", "32", "--split", "2",
                 "--batch-size", "1", "--runs", "2", "--warmup", "1", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert {row["client"] for row in saved["rows"]} == set(METHODS)
    assert len(saved["rows"]) == len(METHODS) * len(BACKENDS)
    assert "peak (fp32 matrix product)" in capsys.readouterr().out


def test_latency_of_a_trained_run(tiny_run_dir, capsys):
    assert main(["latency", str(tiny_run_dir), "--batch-size", "2", "--runs", "2",
                 "--warmup", "1"]) == 0
    assert "| noisy_arl | channels_last | 2 |" in capsys.readouterr().out


def test_unknown_method_is_a_user_error():
    from noisyarl.config import ConfigError

    with pytest.raises(ConfigError, match="unknown nope"):
        latency_of_methods(["nope"], 32)


def test_int8_backend_is_its_own_row_and_the_peak_column_is_explained():
    client = untrained_defence("noisy_arl", image_size=32, split=1, sigma=1.0).client
    report = measure_latency({"rn18_1": client}, 32, batch_sizes=(1, 2), backends=ALL_BACKENDS,
                             runs=2, warmup=1, progress=False)
    assert [(r.backend, r.batch_size) for r in report.rows][-2:] == [
        (INT8_BACKEND, 1), (INT8_BACKEND, 2)]
    table = report.markdown()
    assert "| rn18_1 | onnxruntime_int8 | 2 |" in table and "nominal ÷ fp32 GEMM peak ¹" in table
    assert "not hardware utilisation" in table and "Winograd" in PEAK_FOOTNOTE
    assert any("quantised in memory" in note for note in report.notes)


def test_latency_of_a_run_times_its_int8_export(tiny_run_dir, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_dir)
    plain = latency_of_run(run_dir, batch_sizes=(1,), runs=1, warmup=1, progress=False)
    assert {row.backend for row in plain.rows} == set(BACKENDS)  # no int8 file, not asked
    assert main(["export", str(run_dir), "--int8", "--calibration-images", "32"]) == 0
    report = latency_of_run(run_dir, batch_sizes=(1,), runs=1, warmup=1, progress=False)
    assert [row.backend for row in report.rows] == list(ALL_BACKENDS)
    assert report.notes == [f"{INT8_BACKEND}: {run_dir / 'export' / 'client.int8.onnx'} "
                            "(`noisyarl export --int8`)."]
