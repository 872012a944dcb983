"""``samsegment loadtest`` against the engine service in this process (tiny random-weight SAM):
the report has a run per client count with latencies, errors and the server's memory."""

from __future__ import annotations

import json

import SimpleITK as sitk
from synthetic import make_ct_phantom
from tiny_engine import tiny_worker

from SAMSegmentLib.cli import main
from SAMSegmentLib.research.sitk_images import image_on_grid
from SAMSegmentLib.service.engine import EngineService, ServiceSettings
from SAMSegmentLib.service.http_server import HttpEngineServer
from SAMSegmentLib.service.launcher import TOKEN_ENVIRONMENT
from SAMSegmentLib.service.routes import Tokens


def test_loadtest_reports_each_client_count(tmp_path, monkeypatch, capsys):
    engine = EngineService(ServiceSettings(max_sessions=4), tiny_worker)
    server = HttpEngineServer(("127.0.0.1", 0), engine, Tokens(["load-token"]))
    server.serve_in_thread()
    volume = make_ct_phantom((16, 48, 64))
    image = tmp_path / "ct.nrrd"
    sitk.WriteImage(image_on_grid(volume.array, volume), str(image))
    monkeypatch.setenv(TOKEN_ENVIRONMENT, "load-token")
    try:
        code = main([
            "loadtest", "--url", f"http://127.0.0.1:{server.port}", "--clients", "1,2", "--json",
            str(tmp_path / "load.json"), "--image", str(image), "--model", "sam_vit_b", "--device", "cpu",
            "--clicks", "2", "--propagation-slices", "3", "--think", "0.05", "--throughput-clients", "0",
        ])  # fmt: skip
        assert engine.health()["sessions"] == 0  # every simulated clinician closed its session
    finally:
        server.shutdown()
        server.server_close()
        engine.close()
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "load.json").read_text())
    assert [run["clients"] for run in report["runs"]] == [1, 2]
    for run in report["runs"]:
        assert run["errors"] == 0, run["first_error"]
        assert run["click_to_mask_ms"]["count"] == run["clients"] * 2 * 2  # 2 slices, 2 clicks each
        assert 0 < run["click_to_mask_ms"]["p50"] <= run["click_to_mask_ms"]["p95"]
        assert run["propagation_s_per_slice"] > 0 and run["session_restarts"] == 0
        assert next(iter(run["server_peak_rss_mb_by_replica"].values())) > 0


def test_loadtest_needs_the_token(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(TOKEN_ENVIRONMENT, raising=False)
    assert main(["loadtest", "--json", str(tmp_path / "x.json"), "--synthetic"]) == 2
    assert TOKEN_ENVIRONMENT in capsys.readouterr().err
