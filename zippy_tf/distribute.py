"""Training on several GPUs or machines with TensorFlow's own engine: the strategy, the chief-writes rule, the
input sharding and mixed precision that every ``train`` verb shares.

Strategies (``--strategy``):

- ``auto``: ``MirroredStrategy`` when there are several local GPUs, else the default (one-device) strategy;
- ``mirrored``: ``MirroredStrategy`` over the local devices (all GPUs, or the CPU);
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the machines ``TF_CONFIG`` lists. It must be created
  before TensorFlow runs anything (collective ops are configured at start-up), so the verbs create it first.

The batch size is global, as in Keras: each of the N replicas computes ``batch_size / N`` examples of every step,
and the losses are averaged over the global batch, so the step is the one-device step on the same batch. Under
``multi_worker`` every worker runs the same seeded input pipeline and keeps its slice of each global batch
(:func:`shard_by_data`), so the data order does not depend on the number of workers. BatchNorm computes
global-batch statistics (:func:`synchronize_batch_norm`) so that it does not depend on it either.

``--mixed_precision`` (:func:`use_mixed_precision`) computes in float16 with float32 weights; the trainers compute
their losses in float32 (:func:`as_float32`) and scale them against float16 underflow (:func:`scaled_loss`).

Only the chief writes into the run folder (:func:`worker_folder`); the other workers write (their checkpoints are
collective operations, so they must save too) into a temporary copy of it, deleted afterwards, as in TensorFlow's
multi-worker Keras tutorial. Every worker starts from that copy, so ``--resume`` continues everywhere from the
chief's checkpoint: the run folder must be on a filesystem all machines share (NFS, a cluster filesystem).
"""

import contextlib
import json
import os
import shutil
import tempfile

from zippy_tf.errors import UserError
from zippy_tf.runtime import progress

STRATEGIES = ("auto", "mirrored", "multi_worker")
TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": '
                     '"worker", "index": 0}}\'')


def read_tf_config(environ=None):
    """The cluster of ``TF_CONFIG`` (JSON) as ``(cluster, task_type, task_index)``, checked: a :class:`UserError`
    naming the fix when it is missing, not JSON, or its task is not in its cluster."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    fix = f"set it on each machine, e.g. {TF_CONFIG_EXAMPLE} (index 1 on the second)"
    if not text:
        raise UserError(f"--strategy multi_worker reads the cluster from TF_CONFIG, which is not set; {fix}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON ({e.msg} at column {e.colno}); {fix}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") or not isinstance(task, dict):
        raise UserError(f"TF_CONFIG needs a \"cluster\" with a \"worker\" list and a \"task\"; {fix}")
    kinds = {kind: hosts for kind, hosts in cluster.items() if kind in ("chief", "worker")}
    if any(not isinstance(hosts, list) or not all(isinstance(h, str) and ":" in h for h in hosts)
           for hosts in kinds.values()):
        raise UserError(f"TF_CONFIG's cluster lists must be \"host:port\" strings; {fix}")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in kinds or not isinstance(index, int) or not 0 <= index < len(kinds[task_type]):
        raise UserError(f"TF_CONFIG's task {task!r} is not in its cluster ({', '.join(kinds)}); give each machine "
                        "its own \"type\" and \"index\" in the cluster")
    return kinds, task_type, index


def make_strategy(name):
    """The ``tf.distribute`` strategy called ``name`` (:data:`STRATEGIES`); create it before any other TensorFlow
    work (``multi_worker`` must configure the collective ops at start-up)."""
    from zippy_tf._compat import tf

    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "multi_worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    # physical, not logical, devices: listing logical ones would initialise TensorFlow's runtime
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _is_multi_worker(strategy):
    return getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()


def worker_count(strategy):
    """How many machines (workers) ``strategy`` trains on: 1 unless it is multi-worker."""
    if not _is_multi_worker(strategy):
        return 1
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def is_chief(strategy):
    """Whether this process writes the run folder: always, except on the non-chief workers of a multi-worker
    strategy (the chief is the "chief" task, or worker 0 when the cluster has none)."""
    if not _is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)


def barrier(strategy):
    """Waits until every worker of ``strategy`` reaches this point (an all-reduce); nothing with one worker."""
    if _is_multi_worker(strategy):
        from zippy_tf._compat import tf

        def one():
            return tf.constant(1.0)

        # in a tf.function: eager collectives are slow and say so on every call
        @tf.function(autograph=False)
        def all_reduce():
            return strategy.reduce("SUM", strategy.run(one), axis=None)

        all_reduce()


@contextlib.contextmanager
def worker_folder(strategy, output):
    """Yields the folder this process writes its run into: ``output`` on the chief; on another worker a temporary
    copy of ``output`` as it was before anyone wrote (or a new folder), deleted when the block ends.

    The copy lets every worker take the same decisions (resume or start, which tasks are done) from the chief's
    files on a shared filesystem; two barriers make sure the chief writes nothing before the copy is taken, a third
    that the workers finish together.
    """
    if not _is_multi_worker(strategy):
        yield output
        return
    chief = is_chief(strategy)
    barrier(strategy)
    folder = None
    try:
        if not chief:
            folder = os.path.join(tempfile.mkdtemp(prefix="zippy_tf-worker-"), os.path.basename(output))
            if os.path.isdir(output):
                shutil.copytree(output, folder)
        barrier(strategy)
        yield output if chief else folder
        barrier(strategy)  # no worker leaves (and shuts its runtime down) while another still writes
    finally:
        if folder is not None:
            shutil.rmtree(os.path.dirname(folder), ignore_errors=True)


def shard_by_data(dataset):
    """``dataset`` with the ``DATA`` auto-shard policy: under a multi-worker strategy each worker runs the whole
    (seeded) pipeline and keeps its slice of every global batch, which works for any source (generators, numpy
    functions) and keeps the data order of one process. One worker: unchanged."""
    from zippy_tf._compat import tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def synchronize_batch_norm(model):
    """Makes every BatchNormalization of ``model`` use global-batch statistics under a multi-replica strategy.

    Per-replica statistics would make a distributed step differ from the same step on one device. With one
    replica the statistics are the same up to float rounding (the layer leaves the fused kernel), which a
    binary network's sign activations can still turn into different bits.
    """
    from zippy_tf._compat import keras

    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized, layer.fused = True, False
    return model


def use_mixed_precision(enabled):
    """``--mixed_precision``: computes in float16 with float32 weights (Keras's ``mixed_float16`` policy) for the
    models built afterwards; ``compile`` then wraps their optimizer in a ``LossScaleOptimizer``. Meant for GPUs
    (tensor cores); on a CPU it is allowed but slow, which one stderr line says. Off: the float32 policy."""
    from zippy_tf._compat import keras, tf

    if enabled and not tf.config.list_physical_devices("GPU"):
        progress("--mixed_precision: no GPU found; float16 runs slower than float32 on a CPU (training anyway)")
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")


@contextlib.contextmanager
def float32_policy():
    """Builds the layers made inside the block with the float32 policy, also under ``--mixed_precision`` (e.g. a
    training-only head whose inputs are float32 losses or distances)."""
    from zippy_tf._compat import keras

    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)


def as_float32(structure):
    """Every floating tensor of ``structure`` cast to float32: losses are computed in float32 also under mixed
    precision (float16 sums and logarithms over a batch lose too much)."""
    from zippy_tf._compat import tf

    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32) if t.dtype.is_floating else t, structure)


def scaled_loss(optimizer, loss):
    """``loss`` scaled by ``optimizer``'s loss scale when it is a ``LossScaleOptimizer`` (mixed precision), for
    train steps that take the gradients themselves; pair with :func:`unscaled_gradients`."""
    return optimizer.get_scaled_loss(loss) if hasattr(optimizer, "get_scaled_loss") else loss


def unscaled_gradients(optimizer, gradients):
    """The inverse of :func:`scaled_loss` on the gradients."""
    return optimizer.get_unscaled_gradients(gradients) if hasattr(optimizer, "get_unscaled_gradients") else gradients


__all__ = ["STRATEGIES", "as_float32", "barrier", "float32_policy", "is_chief", "make_strategy", "read_tf_config",
           "scaled_loss", "shard_by_data", "synchronize_batch_norm", "unscaled_gradients", "use_mixed_precision",
           "worker_count", "worker_folder"]
