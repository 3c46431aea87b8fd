"""Smoke tests of the tracker benchmarks: ``benchmarks/tracking_fps.py`` end to end on one generated sequence of five
frames (an OpenCV tracker and one exported neural tracker at two thread counts) and
``benchmarks/exemplar_vs_attention.py`` on a tiny map, checking their JSON's structure, the analytic MACs against
TensorFlow's profiler, and bad flags as one line."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_tracking_fps_times_every_row_at_each_thread_count(tmp_path):
    output, plot = tmp_path / "fps.json", tmp_path / "fps.png"
    result = run("tracking_fps.py", "--trackers", "csrt,lighttrack", "--precisions", "fp32", "--threads", "1,2,all",
                 "--num_sequences", "1", "--num_frames", "5", "--output", str(output), "--plot", str(plot))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    counts = list(dict.fromkeys([1, 2, os.cpu_count()]))  # 'all' is os.cpu_count(); repeated counts run once
    assert report["threads"] == counts and report["all_cores"] == os.cpu_count()
    assert sorted(report["load_average_1min"]) == ["end", "start"]
    assert report["data"] == {"generated_seed": 1000, "num_sequences": 1, "num_frames": 5}
    assert report["default_runtimes"] == {"lighttrack": "int8"}
    rows = report["trackers"]
    assert sorted(rows) == ["csrt", "lighttrack_fp32"]
    for row in rows.values():
        assert sorted(row["fps"]) == sorted(str(t) for t in counts) and all(f > 0 for f in row["fps"].values())
        assert 0 <= row["success_auc"] <= 1 and 0 <= row["precision_20"] <= 1
        assert row["success_auc_change_over_threads"] >= 0
    assert rows["csrt"]["runtime"] == "opencv" and rows["csrt"]["default_runtime"] is True
    neural = rows["lighttrack_fp32"]
    assert (neural["runtime"], neural["precision"], neural["weights"]) == ("tflite", "fp32", "shipped")
    assert neural["default_runtime"] is False  # lighttrack runs int8 by default
    assert set(neural["tracker_hyperparameters"]) == {"penalty_k", "window_influence", "lr"}
    targets = report["targets"]
    assert {"ettrack-s_vs_csrt_fps_1_thread", "ettrack-s_minus_ettrack_success_auc",
            "ettrack_fp32_eq4.6_vs_eq4.5_fps_1_thread", "ettrack_vs_csrt_fps_all_cores"} <= set(targets)
    for entry in targets.values():  # E.T.Track did not run: no value, nothing claimed met
        assert entry["value"] is None and entry["met"] is None
    assert plot.stat().st_size > 0


def test_exemplar_vs_attention_times_layers_and_heads_at_both_precisions(tmp_path):
    from zippy_tf._compat import keras
    from zippy_tf.tracking.attention import SelfAttention
    from zippy_tf.tracking.exemplar import ExemplarAttention
    from zippy_tf.tracking.model import _flops

    output, plot = tmp_path / "eva.json", tmp_path / "eva.png"
    result = run("exemplar_vs_attention.py", "--channels", "64", "--sizes", "8", "--runs", "2", "--warmup", "1",
                 "--output", str(output), "--plot", str(plot))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    (layers,), (heads,) = report["layers"], report["heads"]
    assert (layers["channels"], layers["size"], heads["size"]) == (64, 8, 8)
    assert sorted(layers["models"]) == ["attention", "exemplar", "exemplar_eq4.5", "ffn", "separable_conv"]
    assert sorted(heads["models"]) == ["attention", "exemplar", "separable_conv"]
    for group in (layers, heads):
        for model in group["models"].values():
            assert model["macs"] > 0
            for precision in ("fp32", "int8"):
                assert model[precision]["median_ms"] > 0 and model[precision]["size_bytes"] > 0
        for ratio in group["ratios"].values():
            assert sorted(ratio) == ["fp32", "int8", "macs"] and all(v > 0 for v in ratio.values())
    # Eq. 4.5 applies E depthwise convolutions where Eq. 4.6 applies one: 3 more 3x3 depthwise convs' MACs
    macs = {name: model["macs"] for name, model in layers["models"].items()}
    assert macs["exemplar_eq4.5"] - macs["exemplar"] == 3 * 8 * 8 * 64 * 9
    # the analytic counts agree with TensorFlow's profiler (which also counts element-wise ops: softmax, biases)
    for name, layer in (("attention", SelfAttention(8)), ("exemplar", ExemplarAttention(3, 4, 256,
                                                                                       depthwise_form="mixed_kernel"))):
        inputs = keras.Input((8, 8, 64), batch_size=1)
        profiled = _flops(keras.Model(inputs, layer(inputs))) / 2
        assert 0.9 <= macs[name] / profiled <= 1.0, name
    assert plot.stat().st_size > 0
