"""`--strategy multi_worker` for real: two worker processes on 127.0.0.1 run `zippy-tf train rcm` on a tiny
generated NYUD-MT set beside one process with the same global batch; the chief's weights equal the single
process's, and the other worker leaves nothing behind."""

import json
import os
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest

# one thread per process: three TensorFlow processes share the machine
QUIET = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
TRAIN = ["train", "rcm", "--preset", "rcm-small", "--tasks", "depth", "--variant", "single_task", "--width", "0.125",
         "--crop", "64x48", "--steps", "2", "--batch_size", "2"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start(argv, **environ):
    return subprocess.Popen([sys.executable, "-m", "zippy_tf.cli.main", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **QUIET, **environ})


def finish(process, timeout=300):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def weights(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from zippy_tf.data.multitask_generate import write_nyud_like

    return write_nyud_like(str(tmp_path_factory.mktemp("mt") / "data"), 6, 3, size=(48, 64), seed=0)


def test_two_workers_train_what_one_process_trains(data, tmp_path):
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    scratch = [tmp_path / f"tmp{index}" for index in range(2)]  # each worker's temporary files
    for folder in scratch:
        folder.mkdir()
    run, single = tmp_path / "run", tmp_path / "single"
    workers = [start([*TRAIN, "--data", data, "--output", run, "--strategy", "multi_worker"], TMPDIR=str(scratch[i]),
                     TF_CONFIG=json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}))
               for i in range(2)]
    alone = start([*TRAIN, "--data", data, "--output", single, "--strategy", "mirrored"])
    results = [finish(process) for process in (*workers, alone)]
    for code, out, err in results:
        assert code == 0, err[-3000:]
    chief, other, one = (json.loads(out.strip().splitlines()[-1]) for _, out, _ in results)
    assert chief["run"] == other["run"] == str(run)
    assert "over 2 replica(s)" in results[0][2] and "over 1 replica(s)" in results[2][2]
    assert "--strategy multi_worker: one of 2 workers, the chief: writes --output" in results[0][2].splitlines()
    assert "--strategy multi_worker: one of 2 workers, writes a temporary copy of --output" in results[1][2]

    # same global batch, same data order: the same weights, up to the order of float sums (1e-5 of the largest)
    ours, theirs = weights(run / "depth.weights.h5"), weights(single / "depth.weights.h5")
    assert sorted(ours) == sorted(theirs)
    scale = max(np.abs(values).max() for values in theirs.values())
    for name, values in theirs.items():
        np.testing.assert_allclose(ours[name], values, rtol=1e-5, atol=1e-5 * scale, err_msg=name)
    assert chief["final_loss"]["depth"] == pytest.approx(one["final_loss"]["depth"], rel=1e-5)

    # the run folder holds one run's files; the other worker wrote into a temporary copy, deleted afterwards
    assert sorted(os.listdir(run)) == sorted(os.listdir(single)) == ["config.json", "depth.weights.h5",
                                                                       "encoder.h5", "run.json"]
    assert os.listdir(scratch[1]) == []
    with open(run / "run.json") as f:
        assert json.load(f)["status"] == "done"
