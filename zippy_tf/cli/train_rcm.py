"""`zippy-tf train rcm`: train RCM (or a baseline variant of the thesis's tables) task by task, or add a task to a
trained run.

Task-conditional variants train one task after the other (each alone: the others cannot change); multi_task trains
all tasks jointly. Each finished task's weights are written at once, so ``--resume`` continues with the task that
was in progress, from its last checkpoint. ``--add_task NAME --from RUN --output RUN2`` loads RUN, adds the task
(its encoder path initialised from RUN's encoder) and trains only it.
"""

from absl import flags

from zippy_tf.cli.common import define_distribution_flags
from zippy_tf.cli.multitask_runs import define_training_flags
from zippy_tf.errors import UserError

HELP = ("Train RCM or a baseline variant (single_task, multi_task, series_ra, ..., rcm) task by task on a NYUD-MT / "
        "PASCAL-MT folder, resumable; or add a task to a trained run (--add_task NAME --from RUN).")


def define_flags(fv):
    define_training_flags(fv, "rcm")
    flags.DEFINE_string("tasks", None, "comma-separated tasks, trained in this order (default: the preset's; e.g. "
                        "edge,semseg,normals,depth)", flag_values=fv)
    flags.DEFINE_string("variant", None, "single_task, multi_task, frozen_encoder, task_bn, series_ra, parallel_ra, "
                        "rc, rc_nff, rc_ri or rcm (default: the preset's, rcm)", flag_values=fv)
    flags.DEFINE_string("encoder", None, "pretrained plain ResNet: .h5 saved from zippy_tf.multitask.resnet() of the "
                        "same backbone and width (layers conv1, bn1, layer1_0_conv1, ...), or a torchvision "
                        "state_dict .npz; default: random weights", flag_values=fv)
    flags.DEFINE_integer("ri_images", 8, "training images Response Initialization collects the encoder's responses "
                         "on (rc_ri, rcm)", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("add_task", None, "a task to add to the finished run --from; only it is trained",
                        flag_values=fv)
    flags.DEFINE_string("from", None, "the finished RCM run --add_task adds a task to", flag_values=fv)
    define_distribution_flags(fv)


def _load_encoder(path, config):
    """The plain ResNet every task's encoder path starts from: ``path``'s weights, or a seeded random one."""
    import numpy as np

    from zippy_tf.cli.multitask_runs import load_checked_weights
    from zippy_tf.multitask import load_torchvision_weights, resnet

    encoder = resnet((*config.input_shape, 3), config.backbone, width=config.width, name=config.backbone)
    fix = (f"pass weights of zippy_tf.multitask.resnet(backbone={config.backbone!r}, width={config.width}) or "
           "convert torchvision weights (converters/)")
    if path is not None and path.endswith(".npz"):
        try:
            state = dict(np.load(path))
        except (OSError, ValueError):
            raise UserError(f"--encoder {path!r} is not a readable .npz file; {fix}") from None
        load_torchvision_weights(encoder, state)
    elif path is not None:
        load_checked_weights(encoder, path, "--encoder", fix)
    return encoder


def _ri_images(root, config, count):
    """The first ``count`` training images, unaugmented, as Response Initialization sees them."""
    from zippy_tf.data.multitask_pipeline import multitask_dataset

    data = multitask_dataset(root, config.dataset, "train", config.tasks[:1], crop_size=config.input_shape,
                             batch_size=count)
    return next(iter(data))[0].numpy()


def _train(network, tasks, root, output, record, schedule, steps_per_epoch):
    """Trains ``tasks`` of ``network`` (all jointly for multi_task), skipping those ``record`` lists as done, and
    writes each one's weights as soon as it is trained."""
    import os
    import shutil
    import time

    from zippy_tf._compat import tf
    from zippy_tf.cli.multitask_runs import CHECKPOINTS, progress_on_stderr, save_weights, write_record
    from zippy_tf.data.multitask_pipeline import multitask_dataset
    from zippy_tf.multitask import train_joint, train_task
    from zippy_tf.runtime import progress

    units = [("joint", tuple(tasks))] if network.variant.joint else [(task, (task,)) for task in tasks]
    for unit, unit_tasks in units:
        weights = {task: os.path.join(output, f"{task}.weights.h5") for task in unit_tasks}
        if unit in record["tasks_done"]:
            for task, path in weights.items():
                network[task].load_weights(path)
            continue
        checkpoints = os.path.join(output, CHECKPOINTS, unit)
        resume = tf.train.latest_checkpoint(checkpoints) is not None
        data = multitask_dataset(root, network.config.dataset, "train", unit_tasks,
                                 crop_size=network.config.input_shape, augment=True,
                                 batch_size=schedule["batch_size"], shuffle=True, seed=schedule["seed"])
        progress(f"{'resuming' if resume else 'training'} {unit} ({network.config.variant}): {schedule['steps']} "
                 f"steps of global batch {schedule['batch_size']} over "
                 f"{tf.distribute.get_strategy().num_replicas_in_sync} replica(s)")
        options = dict(steps=schedule["steps"], steps_per_epoch=steps_per_epoch,
                       learning_rate=schedule["learning_rate"], checkpoint_dir=checkpoints, resume=resume, verbose=1)
        start = time.time()
        with progress_on_stderr():
            history = (train_joint(network, data, **options) if unit == "joint"
                       else train_task(network, unit, data, **options))
        for task, path in weights.items():
            save_weights(network[task], path)
        record["tasks_done"].append(unit)
        record["steps"][unit] = schedule["steps"]
        record["wall_time_s"][unit] = round(record["wall_time_s"].get(unit, 0.0) + time.time() - start, 1)
        record["final_loss"][unit] = {name: values[-1] for name, values in history.items() if values}
        write_record(output, record)
        shutil.rmtree(checkpoints)
    shutil.rmtree(os.path.join(output, CHECKPOINTS), ignore_errors=True)


def _finish(network, output, record, run):
    """Writes the finished run into ``output`` (this worker's folder); the result names ``run``, the run folder."""
    import os

    from zippy_tf.cli.multitask_runs import RCM_CONFIG, write_record
    from zippy_tf.io import atomic_write
    from zippy_tf.multitask import parameter_counts

    atomic_write(os.path.join(output, RCM_CONFIG), network.config.to_json())
    record["status"] = "done"
    record["wall_time_s"]["total"] = round(sum(v for k, v in record["wall_time_s"].items() if k != "total"), 1)
    write_record(output, record)
    return {"run": os.path.abspath(run), "variant": network.config.variant, "tasks": list(network.tasks),
            "steps": record["steps"], "wall_time_s": record["wall_time_s"], "final_loss": record["final_loss"],
            "params": parameter_counts(network)}


def _flag_values(fv):
    return {name: fv[name].value for name in fv if name not in ("help", "helpshort", "helpfull", "helpxml")}


def _new_record(settings, fv, root, extra=None):
    from zippy_tf.data.multitask import split_ids

    return {"kind": "rcm", "settings": settings, "flags": _flag_values(fv), "status": "training",
            "data": {"root": root, "split": "train", "images": len(split_ids(root, settings["dataset"], "train"))},
            "tasks_done": [], "steps": {}, "wall_time_s": {}, "final_loss": {}, **(extra or {})}


def _synchronize(network, sync):
    """Global-batch BatchNorm statistics in every task's model (:func:`zippy_tf.cli.common.synchronized_batch_norm`)."""
    from zippy_tf.distribute import synchronize_batch_norm

    if sync:
        for model in network.models.values():
            synchronize_batch_norm(model)


def _start(fv, settings, config, root, encoder_path, folder, sync):
    """Checks everything, then (and only then) creates the run folder ``folder``; returns (output, record,
    network)."""
    import os

    from zippy_tf._compat import keras
    from zippy_tf.cli.multitask_runs import ENCODER_FILE, open_run, save_weights, write_record
    from zippy_tf.multitask import VARIANTS, build_multitask

    output, previous = open_run(folder, fv.resume, settings)
    keras.utils.set_random_seed(fv.seed)
    encoder = _load_encoder(os.path.join(output, ENCODER_FILE) if previous else encoder_path, config)
    ri = _ri_images(root, config, fv.ri_images) if VARIANTS[config.variant].ri else None
    network = build_multitask(config, encoder=encoder, ri_images=ri)
    _synchronize(network, sync)
    os.makedirs(output, exist_ok=True)
    if previous is None:
        save_weights(encoder, os.path.join(output, ENCODER_FILE))
    record = previous or _new_record(settings, fv, root)
    write_record(output, record)
    return output, record, network


def _check_data(fv, dataset, tasks):
    import os

    from zippy_tf.data.multitask import check_split

    if not fv.data:
        raise UserError("--data is required (a NYUD-MT or PASCAL-MT folder)")
    root = os.path.abspath(fv.data)
    check_split(root, dataset, "train", tasks)
    return root


def _add_task(fv, distributed):
    """``--add_task``; ``distributed(batch_size)`` is the verb's ``--strategy`` block (see :func:`main`)."""
    import dataclasses
    import os

    from zippy_tf.cli.multitask_runs import (
        ENCODER_FILE, RCM_CONFIG, epoch_length, open_run, preset_settings, save_weights, write_record,
    )
    from zippy_tf.data.multitask import check_tasks
    from zippy_tf.multitask import MultiTaskConfig, add_task, load_network
    from zippy_tf.runtime import progress

    source, task = fv["from"].value, fv.add_task
    if source is None or task is None:
        raise UserError("--add_task NAME and --from RUN go together: the task to add and the trained run to add it to")
    source = os.path.abspath(source)
    config_path = os.path.join(source, RCM_CONFIG)
    if not os.path.isfile(config_path):
        raise UserError(f"--from {source!r} is not a finished RCM run (no {RCM_CONFIG}); pass a folder written by "
                        "zippy-tf train rcm (finish it with --resume first)")
    with open(config_path) as f:
        config = MultiTaskConfig.from_json(f.read())
    check_tasks(config.dataset, [task])
    if task in config.tasks:
        raise UserError(f"task {task!r} is already in run {source!r} (tasks: {', '.join(config.tasks)}); add a task "
                        "that is not one of them")
    fixed = [flag for flag in ("tasks", "variant", "dataset", "crop", "width") if fv[flag].value is not None]
    if fixed:
        raise UserError(f"--{fixed[0]} is fixed by the run --from; drop it when adding a task")
    root = _check_data(fv, config.dataset, [task])
    _, schedule = preset_settings(fv, "rcm")
    encoder_path = fv.encoder or os.path.join(source, ENCODER_FILE)
    if fv.encoder is None and not os.path.isfile(encoder_path):
        progress(f"{source} has no {ENCODER_FILE}: the new task's encoder path starts from Keras's initialisers")
        encoder_path = None
    settings = {**dataclasses.asdict(config), "from": source, "add_task": task, "schedule": schedule,
                "encoder": encoder_path and os.path.abspath(encoder_path), "data": root}
    steps_per_epoch = epoch_length(schedule["steps"], fv.steps_per_epoch)
    with distributed(schedule["batch_size"]) as (folder, sync):
        output, previous = open_run(folder, fv.resume, settings)
        network = load_network(source)
        encoder = None if encoder_path is None else _load_encoder(encoder_path, config)
        add_task(network, task, encoder=encoder)
        _synchronize(network, sync)
        os.makedirs(output, exist_ok=True)
        record = previous or _new_record(settings, fv, root, {"from": source, "inherited_tasks": list(config.tasks)})
        write_record(output, record)
        _train(network, [task], root, output, record, schedule, steps_per_epoch)
        for old in config.tasks:  # from the network, after training: the file shows the old task did not change
            save_weights(network[old], os.path.join(output, f"{old}.weights.h5"))
        if encoder is not None:
            save_weights(encoder, os.path.join(output, ENCODER_FILE))
        return _finish(network, output, record, fv.output)


def main(fv, args, name):
    import contextlib
    import dataclasses
    import os

    from zippy_tf.cli.common import output_folder, start_distribution, synchronized_batch_norm
    from zippy_tf.cli.multitask_runs import epoch_length, preset_settings
    from zippy_tf.distribute import worker_folder
    from zippy_tf.runtime import set_threads

    if args:
        raise UserError(f"unexpected arguments {args}; pass options as --flags")
    if fv.threads:
        set_threads(fv.threads)

    @contextlib.contextmanager
    def distributed(batch_size):
        """(this worker's run folder, synchronised BatchNorm?) inside the ``--strategy``'s scope."""
        output = output_folder(fv.output)
        strategy = start_distribution(fv, batch_size)
        with worker_folder(strategy, output) as folder, strategy.scope():
            yield folder, synchronized_batch_norm(fv, strategy)

    if fv.add_task is not None or fv["from"].value is not None:
        return _add_task(fv, distributed)
    network, schedule = preset_settings(fv, "rcm")
    if fv.dataset is not None and fv.dataset != network["dataset"]:  # the preset's tasks and size are NYUD's
        network.pop("tasks")
        if fv.crop is None:
            network.pop("input_shape")
    if fv.tasks is not None:
        network["tasks"] = tuple(task.strip() for task in fv.tasks.split(",") if task.strip())
    if fv.variant is not None:
        network["variant"] = fv.variant
    from zippy_tf.multitask import MultiTaskConfig

    config = MultiTaskConfig(**network)
    root = _check_data(fv, config.dataset, config.tasks)
    if fv.encoder is not None and not os.path.isfile(fv.encoder):
        raise UserError(f"--encoder {fv.encoder!r} does not exist; pass a pretrained ResNet weights file")
    settings = {**dataclasses.asdict(config), "schedule": schedule, "ri_images": fv.ri_images, "data": root,
                "encoder": None if fv.encoder is None else os.path.abspath(fv.encoder)}
    steps_per_epoch = epoch_length(schedule["steps"], fv.steps_per_epoch)
    with distributed(schedule["batch_size"]) as (folder, sync):
        output, record, network = _start(fv, settings, config, root, fv.encoder, folder, sync)
        _train(network, config.tasks, root, output, record, schedule, steps_per_epoch)
        return _finish(network, output, record, fv.output)


__all__ = ["HELP", "define_flags", "main"]
