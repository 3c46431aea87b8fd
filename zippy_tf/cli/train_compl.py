"""`zippy-tf train compl`: a dense target task trained jointly with a self-supervised auxiliary (CompL, thesis ch. 3).

Modes: "joint" (target + λ·SSL, the default with an SSL task), "ssl" (self-supervised pre-training) and "target"
(target only, or fine-tuning after "ssl"). The transfer rows of the thesis's tables chain two runs through
``--init_from``: ``--mode ssl`` then ``--mode target --init_from RUN`` ("MoCo → Depth"), or ``--mode joint
--init_from RUN`` ("DenseCL → DenseCL + Depth"). The labelled subset (``--label_fraction``, nested across
fractions) and the SSL images are recorded in run.json.
"""

from absl import flags

from zippy_tf.cli.common import define_distribution_flags
from zippy_tf.cli.multitask_runs import define_training_flags
from zippy_tf.errors import UserError

HELP = ("Train a dense target task with a self-supervised auxiliary (CompL: rotation, moco, densecl) at a label "
        "fraction, resumable; SSL pre-training and fine-tuning via --mode and --init_from.")


def define_flags(fv):
    define_training_flags(fv, "compl")
    flags.DEFINE_string("target", None, "target task: depth, semseg, normals or edge (default: the preset's, depth)",
                        flag_values=fv)
    flags.DEFINE_string("ssl", "none", "self-supervised task: none, rotation, moco or densecl", flag_values=fv)
    flags.DEFINE_float("label_fraction", 1.0, "fraction of the training images whose target labels are used, in "
                       "(0, 1]; the subsets are nested (5 % inside 10 %)", flag_values=fv)
    flags.DEFINE_boolean("ssl_same_subset", False, "the SSL task sees only the labelled images (thesis Tables "
                         "3.3/3.7) instead of every image", flag_values=fv)
    flags.DEFINE_string("mode", None, "joint, ssl or target (default: joint with an SSL task, else target)",
                        flag_values=fv)
    flags.DEFINE_string("init_from", None, "start from a CompL run folder (its trunk, and its heads where they fit) "
                        "or a trunk weights .h5", flag_values=fv)
    flags.DEFINE_float("ssl_weight", None, "λ of L_target + λ·L_ssl (default: 0.2 MoCo/DenseCL, 0.05 rotation)",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_string("backbone", None, "resnet18 or resnet26 (default: the preset's, resnet26)", flag_values=fv)
    flags.DEFINE_string("norm", None, "batch or group (default: the preset's, group)", flag_values=fv)
    define_distribution_flags(fv)


def _labelled_dataset(root, dataset, target, labelled, crop, batch_size, seed):
    """Augmented (image, labels) batches of the labelled subset only, endless."""
    from zippy_tf.data.multitask_pipeline import multitask_dataset

    data = multitask_dataset(root, dataset, "train", [target], crop_size=crop, augment=True, batch_size=1,
                             shuffle=True, seed=seed, ids=labelled).unbatch()
    return data.repeat().batch(batch_size, drop_remainder=True)


def _init_from(path, spec, trunk, head):
    """Loads ``--init_from`` into the trunk (and the target head when the run has the same target); returns the
    source run's SSL head file and SSL name, or (None, None)."""
    import os

    from zippy_tf.cli.multitask_runs import COMPL_FILE, load_checked_weights
    from zippy_tf.io import read_json

    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, COMPL_FILE)):
            raise UserError(f"--init_from {path!r} is not a CompL run (no {COMPL_FILE}); pass a run folder of "
                            "zippy-tf train compl or a trunk weights .h5")
        source = read_json(os.path.join(path, COMPL_FILE), "CompL spec")
        differ = [key for key in ("backbone", "norm", "width", "input_shape") if source[key] != spec[key]]
        if differ:
            raise UserError(f"--init_from {path!r} has another trunk ({differ[0]} {source[differ[0]]} vs "
                            f"{spec[differ[0]]}); pass the same --preset/--{differ[0].replace('input_shape', 'crop')}")
        fix = "keep the run folder's files together"
        load_checked_weights(trunk, os.path.join(path, "trunk.h5"), "--init_from trunk", fix)
        head_path = os.path.join(path, "target_head.h5")
        if source["target"] == spec["target"] and source["dataset"] == spec["dataset"] and os.path.isfile(head_path):
            load_checked_weights(head, head_path, "--init_from target head", fix)
        ssl_path = os.path.join(path, "ssl_head.h5")
        return (ssl_path, source["ssl"]) if os.path.isfile(ssl_path) else (None, None)
    load_checked_weights(trunk, path, "--init_from", "pass trunk weights saved from zippy_tf.multitask.deeplab_trunk "
                         "of the same backbone, norm and width, or a CompL run folder")
    return None, None


def _fit(model, data, output, steps, steps_per_epoch, learning_rate):
    """``model.fit`` for ``steps`` with a checkpoint after every epoch in ``output/checkpoints``, continued from the
    last one when there is one; returns the Keras history."""
    import os

    from zippy_tf._compat import keras, tf
    from zippy_tf.cli.multitask_runs import CHECKPOINTS, progress_on_stderr
    from zippy_tf.multitask import sgd

    model.compile(optimizer=sgd(learning_rate, steps))
    model.optimizer.build(model.trainable_variables)  # slots must exist before a restore fills them
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(output, CHECKPOINTS), max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    save = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: manager.save(checkpoint_number=epoch + 1))
    with progress_on_stderr():
        history = model.fit(data, epochs=steps // steps_per_epoch,
                            initial_epoch=int(model.optimizer.iterations.numpy()) // steps_per_epoch,
                            steps_per_epoch=steps_per_epoch, callbacks=[save], verbose=1)
    return history.history


def main(fv, args, name):
    import os
    import shutil
    import time

    from zippy_tf.cli.multitask_runs import (
        CHECKPOINTS, COMPL_FILE, compl_parameters, compl_parts, epoch_length, load_checked_weights, open_run,
        preset_settings, save_weights, write_record,
    )
    from zippy_tf._compat import keras
    from zippy_tf.cli.common import output_folder, start_distribution, synchronized_batch_norm
    from zippy_tf.distribute import shard_by_data, synchronize_batch_norm, worker_folder
    from zippy_tf.io import write_json
    from zippy_tf.runtime import progress, set_threads

    if args:
        raise UserError(f"unexpected arguments {args}; pass options as --flags")
    if fv.threads:
        set_threads(fv.threads)
    spec, schedule = preset_settings(fv, "compl")
    spec.update({key: fv[key].value for key in ("target", "backbone", "norm") if fv[key].value is not None})
    from zippy_tf.data.multitask import check_split, check_tasks
    from zippy_tf.multitask.compl import MODES, CompLModel, compl_splits, task_target_loss
    from zippy_tf.multitask.ssl import CONTRASTIVE, check_ssl
    from zippy_tf.multitask.views import folder_images, joint_dataset, ssl_dataset

    check_tasks(spec["dataset"], [spec["target"]])
    ssl = check_ssl(fv.ssl)
    mode = fv.mode or ("target" if ssl == "none" else "joint")
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if not fv.data:
        raise UserError("--data is required (a NYUD-MT or PASCAL-MT folder)")
    root = os.path.abspath(fv.data)
    ids = check_split(root, spec["dataset"], "train", [spec["target"]])
    labelled, ssl_ids = compl_splits(ids, fv.label_fraction, seed=fv.seed, same_subset=fv.ssl_same_subset)
    if fv.init_from is not None and not os.path.exists(fv.init_from):
        raise UserError(f"--init_from {fv.init_from!r} does not exist; pass a CompL run folder or a trunk .h5")
    model_ssl = "none" if mode == "target" else ssl  # target-only training needs no SSL head or momentum encoder
    settings = {"network": spec, "schedule": schedule, "ssl": ssl, "mode": mode, "label_fraction": fv.label_fraction,
                "ssl_same_subset": fv.ssl_same_subset, "ssl_weight": fv.ssl_weight, "data": root,
                "init_from": fv.init_from and os.path.abspath(fv.init_from)}
    steps_per_epoch = epoch_length(schedule["steps"], fv.steps_per_epoch)
    output = output_folder(fv.output)
    strategy = start_distribution(fv, schedule["batch_size"])
    with worker_folder(strategy, output) as folder, strategy.scope():
        previous = open_run(folder, fv.resume, settings)[1]
        keras.utils.set_random_seed(fv.seed)
        trunk, head = compl_parts(spec)
        if synchronized_batch_norm(fv, strategy):
            synchronize_batch_norm(trunk)
        ssl_head_path, source_ssl = _init_from(fv.init_from, spec, trunk, head) if fv.init_from else (None, None)
        model = CompLModel(trunk, head, task_target_loss(spec["target"]), ssl=model_ssl, ssl_weight=fv.ssl_weight,
                           mode=mode, ssl_size=len(ssl_ids) if model_ssl in CONTRASTIVE else None, seed=fv.seed)
        if ssl_head_path is not None and source_ssl == model_ssl:
            load_checked_weights(model.ssl_head, ssl_head_path, "--init_from SSL head",
                                 "keep the run's files together")
        if fv.init_from and model_ssl in CONTRASTIVE:
            model.sync_momentum_encoder()
        crop, batch = tuple(spec["input_shape"]), schedule["batch_size"]
        supervised = None if mode == "ssl" else _labelled_dataset(root, spec["dataset"], spec["target"], labelled,
                                                                  crop, batch, fv.seed)
        stream = None if model_ssl == "none" else ssl_dataset(
            folder_images(root, spec["dataset"], ssl_ids, size=crop), model_ssl, batch_size=batch, seed=fv.seed)
        data = joint_dataset(supervised, stream) if mode == "joint" else stream if mode == "ssl" else supervised

        os.makedirs(folder, exist_ok=True)
        record = previous or {"kind": "compl", "settings": settings, "status": "training",
                              "flags": {key: fv[key].value for key in fv if not key.startswith("help")},
                              "data": {"root": root, "split": "train", "images": len(ids)},
                              "labelled_ids": labelled, "ssl_ids": [] if model_ssl == "none" else ssl_ids,
                              "steps": 0, "wall_time_s": 0.0}
        write_record(folder, record)
        progress(f"training {spec['target']} ({mode}, ssl {model_ssl}) on {len(labelled)} labelled of {len(ids)} "
                 f"images: {schedule['steps']} steps of global batch {batch} over "
                 f"{strategy.num_replicas_in_sync} replica(s)")
        start = time.time()
        history = _fit(model, shard_by_data(data), folder, schedule["steps"], steps_per_epoch,
                       schedule["learning_rate"])
        save_weights(trunk, os.path.join(folder, "trunk.h5"))
        if mode != "ssl":
            save_weights(head, os.path.join(folder, "target_head.h5"))
        if model_ssl != "none":
            save_weights(model.ssl_head, os.path.join(folder, "ssl_head.h5"))
        write_json(os.path.join(folder, COMPL_FILE), {**spec, "ssl": model_ssl, "mode": mode,
                                                      "options": model.options})
        elapsed = record["wall_time_s"] + time.time() - start
        record.update(status="done", steps=schedule["steps"], wall_time_s=round(elapsed, 1),
                      final={key: values[-1] for key, values in history.items() if values})
        write_record(folder, record)
        shutil.rmtree(os.path.join(folder, CHECKPOINTS), ignore_errors=True)
    return {"run": output, "target": spec["target"], "ssl": ssl, "mode": mode, "label_fraction": fv.label_fraction,
            "labelled_images": len(labelled), "ssl_images": len(record["ssl_ids"]), "steps": schedule["steps"],
            "wall_time_s": record["wall_time_s"], "final": record["final"], "options": model.options,
            "params": compl_parameters(trunk, head, spec["target"])}


__all__ = ["HELP", "define_flags", "main"]
