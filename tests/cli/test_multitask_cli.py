"""`zippy-tf train rcm|compl`, `eval multitask` and `export --run` end to end on a tiny generated NYUD-MT set, and
their bad input: exit 2, one error line, nothing written."""

import contextlib
import io
import json
import os

import h5py
import numpy as np
import pytest

from zippy_tf.cli.main import main

SMALL = ["--width", "0.125", "--crop", "64x48", "--steps", "2", "--batch_size", "2"]


def run(*argv):
    """(exit code, stdout, stderr) of the command run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def result(argv):
    code, out, err = run(*argv)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from zippy_tf.data.multitask_generate import write_nyud_like

    return write_nyud_like(str(tmp_path_factory.mktemp("mt") / "data"), 6, 3, size=(48, 64), seed=0)


@pytest.fixture(scope="module")
def rcm_run(data, tmp_path_factory):
    """Two tasks trained task by task; --resume on a new folder starts fresh."""
    output = str(tmp_path_factory.mktemp("rcm") / "run")
    trained, err = result(["train", "rcm", "--preset", "rcm-small", "--data", data, "--tasks", "semseg,depth",
                           "--ri_images", "4", "--output", output, "--resume", *SMALL])
    return output, trained, err


def _weights(path):
    with h5py.File(path, "r") as f:
        found = {}
        f.visititems(lambda name, item: found.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
        return found


@pytest.fixture(scope="module")
def added_run(rcm_run, data):
    source = rcm_run[0]
    before = {name: open(os.path.join(source, name), "rb").read() for name in os.listdir(source)}
    output = source + "_normals"
    added, _ = result(["train", "rcm", "--preset", "rcm-small", "--data", data, "--add_task", "normals",
                       "--from", source, "--output", output, "--steps", "2", "--batch_size", "2"])
    return output, added, before


def test_train_rcm_writes_a_resumable_run(rcm_run):
    output, trained, err = rcm_run
    assert "starting fresh" in err
    assert trained["tasks"] == ["semseg", "depth"] and trained["variant"] == "rcm"
    assert trained["steps"] == {"semseg": 2, "depth": 2} and trained["wall_time_s"]["total"] > 0
    record = json.load(open(os.path.join(output, "run.json")))
    assert record["status"] == "done" and record["tasks_done"] == ["semseg", "depth"]
    assert record["settings"]["input_shape"] == [48, 64] and record["data"]["images"] == 6
    assert not os.path.exists(os.path.join(output, "checkpoints"))
    params = trained["params"]
    assert params["total"] == params["shared"] + sum(params["per_task"].values())
    # a finished run resumed trains nothing and reports the same run
    again, _ = result(["train", "rcm", "--preset", "rcm-small", "--data", record["data"]["root"], "--tasks",
                       "semseg,depth", "--ri_images", "4", "--output", output, "--resume", *SMALL])
    assert again["params"] == params and again["steps"] == trained["steps"]


def test_add_task_trains_only_the_new_task(rcm_run, added_run):
    source, trained, _ = rcm_run
    output, added, before = added_run
    assert added["tasks"] == ["semseg", "depth", "normals"] and list(added["steps"]) == ["normals"]
    assert added["params"]["shared"] == trained["params"]["shared"]
    assert {t: added["params"]["per_task"][t] for t in ("semseg", "depth")} == trained["params"]["per_task"]
    assert {name: open(os.path.join(source, name), "rb").read() for name in os.listdir(source)} == before
    for task in ("semseg", "depth"):  # written from the network after training normals
        old, new = _weights(os.path.join(source, f"{task}.weights.h5")), _weights(os.path.join(output,
                                                                                             f"{task}.weights.h5"))
        assert old.keys() == new.keys() and all(np.array_equal(old[k], new[k]) for k in old)


def test_eval_reports_every_metric_and_delta_m(added_run, rcm_run, data, tmp_path):
    path = tmp_path / "eval.json"
    report, _ = result(["eval", "multitask", "--run", added_run[0], "--data", data, "--baseline", rcm_run[0],
                        "--output", path])
    assert report == {**json.loads(path.read_text()), "output": str(path)}
    assert report["images"] == 3 and report["kind"] == "rcm" and report["variant"] == "rcm"
    assert {"mIoU", "IoU"} <= set(report["tasks"]["semseg"]) and {"rmse", "log_rmse"} <= set(report["tasks"]["depth"])
    assert {"mean", "median", "rmse", "11.25", "22.5", "30"} <= set(report["tasks"]["normals"])
    # the old tasks did not change when normals was added: no drop against the run before
    assert report["delta_m_tasks"] == ["semseg", "depth"] and report["delta_m"] == 0.0
    assert report["params"] == added_run[1]["params"]


def test_export_folds_the_task_network(added_run, tmp_path):
    path = tmp_path / "normals.tflite"
    exported, _ = result(["export", "--model", "rcm", "--run", added_run[0], "--task", "normals", "--format", "fp32",
                          "--output", path])
    assert exported["folded"] and exported["size_bytes"] == path.stat().st_size
    assert exported["ops"]["CONV_2D"] == 30  # as many as the plain network's convolutions: one per folded path


@pytest.fixture(scope="module", params=["rotation", "moco"])
def compl_run(request, data, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("compl") / request.param)
    trained, _ = result(["train", "compl", "--preset", "compl-small", "--data", data, "--ssl", request.param,
                         "--label_fraction", "0.5", "--output", output, "--backbone", "resnet18", "--norm", "batch",
                         *SMALL])
    return output, trained


def test_compl_records_the_labelled_subset_and_evaluates_and_exports(compl_run, data, tmp_path):
    from zippy_tf.data.multitask import split_ids
    from zippy_tf.multitask.compl import label_subset

    output, trained = compl_run
    record = json.load(open(os.path.join(output, "run.json")))
    ids = split_ids(data, "nyud", "train")
    assert record["labelled_ids"] == label_subset(ids, 0.5) and len(record["labelled_ids"]) == 3
    assert record["ssl_ids"] == sorted(ids) and trained["mode"] == "joint"
    report, _ = result(["eval", "multitask", "--run", output, "--data", data, "--output", tmp_path / "e.json"])
    assert list(report["tasks"]) == ["depth"] and report["ssl"] == trained["ssl"]
    # the deployable network: trunk + a 1x1 head on the 256 * 0.125 channels of the trunk
    assert report["params"] == trained["params"] and report["params"]["per_task"] == {"depth": 32 + 1}
    exported, _ = result(["export", "--run", output, "--format", "fp32", "--output", tmp_path / "d.tflite"])
    assert exported["task"] == "depth" and not exported["folded"] and (tmp_path / "d.tflite").is_file()


@pytest.fixture(scope="module")
def single_task_run(tmp_path_factory):
    """An untrained single_task network saved as a run folder (export refuses to fold it)."""
    from zippy_tf.multitask import MultiTaskConfig, build_multitask, save_network

    output = str(tmp_path_factory.mktemp("single") / "run")
    save_network(build_multitask(MultiTaskConfig("single_task", "nyud", ("semseg",), (48, 64), width=0.125)),
                 output)
    return output


@pytest.fixture(scope="module")
def foreign_weights(tmp_path_factory):
    from zippy_tf import keras

    path = str(tmp_path_factory.mktemp("foreign") / "encoder.h5")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="classifier")])
    model.save_weights(path)
    return path


RCM = ["train", "rcm", "--preset", "rcm-small", "--data", "DATA", "--output", "OUT", *SMALL]
COMPL = ["train", "compl", "--preset", "compl-small", "--data", "DATA", "--output", "OUT", *SMALL]
BAD = [
    (RCM + ["--tasks", "semseg,albedo"], "unknown task 'albedo'"),
    (RCM + ["--dataset", "kitti"], "unknown dataset 'kitti'"),
    (RCM + ["--variant", "lora"], "unknown variant 'lora'"),
    (COMPL + ["--ssl", "simclr"], "unknown ssl 'simclr'"),
    (COMPL + ["--label_fraction", "0"], "outside (0, 1]"),
    (COMPL + ["--label_fraction", "1.5"], "outside (0, 1]"),
    (COMPL + ["--label_fraction", "0.1"], "selects no image"),
    ([a.replace("DATA", "MISSING") for a in RCM], "does not exist"),
    ([a.replace("DATA", "EMPTY") for a in COMPL], "split file"),
    (["train", "rcm", "--data", "DATA", "--add_task", "semseg", "--from", "RCMRUN", "--output", "OUT"],
     "already in run"),
    (["train", "rcm", "--data", "DATA", "--add_task", "edge", "--from", "MISSING", "--output", "OUT"],
     "not a finished RCM run"),
    (["export", "--run", "SINGLE", "--fold", "--format", "fp32", "--output", "OUT"], "without --fold"),
    (RCM + ["--encoder", "FOREIGN"], "does not match the network's layer names"),
    ([a.replace("OUT", "READONLY/run") for a in RCM], "not writable"),
    ([a.replace("OUT", "FILE") for a in RCM], "is an existing file"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[f"{i}-{m}" for i, (_, m) in enumerate(BAD)])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(argv, message, data, rcm_run, single_task_run,
                                                            foreign_weights, readonly_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("keep")
    readonly = readonly_folder
    names = {"DATA": data, "OUT": tmp_path / "out", "MISSING": tmp_path / "missing", "EMPTY": tmp_path / "empty",
             "RCMRUN": rcm_run[0], "SINGLE": single_task_run, "FOREIGN": foreign_weights, "READONLY": readonly,
             "FILE": tmp_path / "file"}
    for name, value in names.items():
        argv = [a.replace(name, str(value)) if name in a and not a.startswith("--") else a for a in argv]
    code, out, err = run(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("zippy-tf: error:") and message in lines[0]
    assert not (tmp_path / "out").exists() and (tmp_path / "file").read_text() == "keep"
    assert not os.path.exists(os.path.join(str(readonly), "run"))
