"""zippy_tf.distribute and the train verbs' --strategy / --mixed_precision in one process: TF_CONFIG checks, the
chief-writes rule, a training step under MirroredStrategy and under mixed precision. Two real workers:
test_multi_worker.py."""

import json
import os
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.cli.main import main
from zippy_tf.distribute import is_chief, read_tf_config, worker_count, worker_folder
from zippy_tf.errors import UserError

TWO = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
RCM = ["train", "rcm", "--preset", "rcm-small", "--tasks", "depth", "--variant", "single_task", "--width", "0.125",
       "--crop", "64x48", "--steps", "1", "--batch_size", "2"]


def run(capsys, *argv):
    """(exit code, stdout, stderr) of the command run in this process."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from zippy_tf.data.multitask_generate import write_nyud_like

    return write_nyud_like(str(tmp_path_factory.mktemp("mt") / "data"), 6, 3, size=(48, 64), seed=0)


@pytest.fixture
def float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_tf_config_is_read_and_checked():
    config = {"cluster": TWO, "task": {"type": "worker", "index": 1}}
    assert read_tf_config({"TF_CONFIG": json.dumps(config)}) == (TWO, "worker", 1)


@pytest.mark.parametrize("text, message", [
    (None, "TF_CONFIG, which is not set"),
    ("{cluster", "not valid JSON"),
    (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}), "needs a \"cluster\""),
    (json.dumps({"cluster": {"worker": ["no-port"]}, "task": {"type": "worker", "index": 0}}), "host:port"),
    (json.dumps({"cluster": TWO, "task": {"type": "worker", "index": 2}}), "is not in its cluster"),
    (json.dumps({"cluster": TWO, "task": {"type": "chief", "index": 0}}), "is not in its cluster"),
])
def test_a_bad_tf_config_names_the_fix(text, message):
    with pytest.raises(UserError, match=message) as error:
        read_tf_config({} if text is None else {"TF_CONFIG": text})
    assert "TF_CONFIG" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("verb", [["train", "kp2d", "--data", "IMAGES", "--epochs", "1"],
                                  ["train", "lighttrack", "--data", "SEQUENCES"],
                                  ["train", "rcm", "--preset", "rcm-small", "--data", "NYUD"],
                                  ["train", "compl", "--preset", "compl-small", "--data", "NYUD"]],
                         ids=["kp2d", "lighttrack", "rcm", "compl"])
def test_train_with_a_bad_tf_config_exits_2_in_one_line_and_writes_nothing(verb, data, tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker"}}')
    argv = [{"IMAGES": tmp_path, "SEQUENCES": tmp_path, "NYUD": data}.get(a, a) for a in verb]
    code, out, err = run(capsys, *argv, "--output", tmp_path / "run", "--strategy", "multi_worker")
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and "TF_CONFIG" in err
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("model", ["zippypoint", "zippypoint-int8"])
def test_mixed_precision_is_refused_for_fake_quantised_networks(model, tmp_path, capsys):
    code, out, err = run(capsys, "train", model, "--data", tmp_path, "--epochs", "1", "--output", tmp_path / "run",
                         "--mixed_precision")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [f"zippy-tf: error: --mixed_precision does not fit {model}: its int8 fake "
                                        "quantisation computes in float32 only; drop --mixed_precision (or train "
                                        "kp2d)"]
    assert not os.path.exists(tmp_path / "run")


class FakeMultiWorker:
    """What zippy_tf.distribute reads of a MultiWorkerMirroredStrategy, without a cluster."""

    def __init__(self, cluster, task_type, task_id):
        self.extended = SimpleNamespace(_in_multi_worker_mode=lambda: True)
        self.cluster_resolver = SimpleNamespace(task_type=task_type, task_id=task_id,
                                                cluster_spec=lambda: tf.train.ClusterSpec(cluster))
        self.num_replicas_in_sync = sum(len(hosts) for hosts in cluster.values())  # one device per worker
        self.barriers = 0

    def run(self, fn):
        self.barriers += 1
        return fn()

    def reduce(self, op, value, axis):
        return value


@pytest.mark.parametrize("cluster, task, chief", [
    (TWO, ("worker", 0), True), (TWO, ("worker", 1), False),
    ({"chief": ["127.0.0.1:3"], **TWO}, ("chief", 0), True), ({"chief": ["127.0.0.1:3"], **TWO}, ("worker", 0), False),
])
def test_the_chief_is_the_chief_task_or_worker_0(cluster, task, chief):
    strategy = FakeMultiWorker(cluster, *task)
    assert is_chief(strategy) is chief
    assert worker_count(strategy) == sum(len(hosts) for hosts in cluster.values())


def test_one_process_writes_its_run_folder_itself(tmp_path):
    strategy = tf.distribute.get_strategy()
    assert is_chief(strategy) and worker_count(strategy) == 1
    with worker_folder(strategy, str(tmp_path)) as folder:
        assert folder == str(tmp_path)


@pytest.mark.parametrize("existing", [True, False], ids=["resumed", "new"])
def test_a_non_chief_worker_writes_into_a_temporary_copy_of_the_run(existing, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)
    os.makedirs(tmp_path / "tmp")
    run_folder = tmp_path / "run"
    if existing:  # the chief's checkpoint, which every worker resumes from
        os.makedirs(run_folder / "checkpoints")
        (run_folder / "checkpoints" / "checkpoint").write_text("ckpt-1")
    strategy = FakeMultiWorker(TWO, "worker", 1)
    with pytest.raises(RuntimeError, match="stop"), worker_folder(strategy, str(run_folder)) as folder:
        assert folder != str(run_folder) and os.path.basename(folder) == "run"
        assert os.path.isfile(os.path.join(folder, "checkpoints", "checkpoint")) is existing
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "weights.h5"), "w") as f:
            f.write("the non-chief's")
        raise RuntimeError("stop")  # the copy goes also when training fails
    assert strategy.barriers == 2  # no write by the chief before the copy is taken
    assert os.listdir(tmp_path / "tmp") == []
    assert sorted(os.listdir(tmp_path)) == (["run", "tmp"] if existing else ["tmp"])
    if existing:
        assert os.listdir(run_folder) == ["checkpoints"]
    chief = FakeMultiWorker(TWO, "worker", 0)
    with worker_folder(chief, str(run_folder)) as folder:
        assert folder == str(run_folder)
    assert chief.barriers == 3  # and the workers leave together


def test_a_global_batch_must_split_over_the_replicas(monkeypatch, capsys):
    from zippy_tf.cli.common import start_distribution

    monkeypatch.setattr("zippy_tf.distribute.make_strategy", lambda name: FakeMultiWorker(TWO, "worker", 1))
    flags = SimpleNamespace(strategy="multi_worker", mixed_precision=False)
    assert start_distribution(flags, 4).num_replicas_in_sync == 2
    assert capsys.readouterr().err.splitlines() == ["--strategy multi_worker: one of 2 workers, writes a temporary "
                                                    "copy of --output"]
    with pytest.raises(UserError, match="--batch_size 3 does not split over the 2 replicas.*multiple of 2"):
        start_distribution(flags, 3)


@pytest.mark.parametrize("strategy, mixed", [("mirrored", False), ("auto", True)])
def test_a_training_step_runs_on_cpu(strategy, mixed, data, tmp_path, monkeypatch, capsys, float32_afterwards):
    from zippy_tf.multitask.training import MultiTaskTrainer

    seen = []
    fit = MultiTaskTrainer.fit

    def spy(self, *args, **kwargs):
        seen.append((type(tf.distribute.get_strategy()).__name__, self.optimizer, self.dtype_policy.name))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(MultiTaskTrainer, "fit", spy)
    argv = [*RCM, "--data", data, "--output", tmp_path / "run", "--strategy", strategy]
    code, out, err = run(capsys, *argv, *(["--mixed_precision"] if mixed else []))
    assert code == 0, err
    (name, optimizer, policy), = seen
    assert name == {"mirrored": "MirroredStrategy", "auto": "_DefaultDistributionStrategy"}[strategy]
    assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer) is mixed
    assert policy == ("mixed_float16" if mixed else "float32")
    assert ("--mixed_precision: no GPU found" in err) is mixed
    final = json.loads(out.strip().splitlines()[-1])["final_loss"]["depth"]
    assert np.isfinite(final["loss"]) and final["loss"] > 0
    with h5py.File(tmp_path / "run" / "depth.weights.h5", "r") as f:  # float32 weights also under mixed precision
        kinds = set()
        f.visititems(lambda _, item: kinds.add(item.dtype.name) if isinstance(item, h5py.Dataset) else None)
    assert kinds == {"float32"}
