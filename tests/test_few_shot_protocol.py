import importlib.util
import json
from pathlib import Path

import torch

from labelled import write_noise_labels

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "few_shot_protocol.py"


def test_protocol_runs_splits_and_reports_medians(use_tiny_manifest, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("few_shot_protocol", SCRIPT)
    protocol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protocol)
    labels = write_noise_labels(tmp_path / "photos", 40)
    out = tmp_path / "result.json"
    threads = torch.get_num_threads()
    try:
        assert protocol.main([str(labels), "--model", "grmp-tiny", "--n", "25", "--splits", "2",
                              "--epochs", "2", "--eval-every", "1", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "median over 2 splits" in printed
    result = json.loads(out.read_text())
    assert [s["test"] for s in result["splits"]] == [8, 8]  # 20% of 40
    assert all(s["epochs"] == 2 and s["val_srcc"] is not None for s in result["splits"])
    assert set(result["median"]) == {"srcc_before", "plcc_before", "srcc", "plcc"}
