"""RCM (thesis ch. 2): reparameterized convolutions for incremental multi-task learning.

- layers: :class:`FilterBank` (the frozen shared W_s), :class:`ReparamConv2D` (W_t·W_s, optional NFF), the Series and
  Parallel Residual Adapter baselines;
- :func:`response_initialize` (RI) over any Keras model with convolutions;
- :func:`fold_model` / :func:`fold_network`: a task's path as a plain Keras network (export with
  ``zippy_tf.export.convert``);
- :func:`build_multitask`: task-conditional DeepLabv3+ on ResNet-18 in every variant of the thesis's tables,
  :func:`add_task` for incremental learning, :func:`parameter_counts`, :func:`deeplab_trunk` for CompL;
- losses and :func:`train_task` / :func:`train_joint`.

Example (incremental)::

    net = build_multitask(MultiTaskConfig("rcm", "nyud", tasks=("semseg",)), encoder=resnet18, ri_images=images)
    train_task(net, "semseg", dataset, steps=1000)
    add_task(net, "depth", encoder=resnet18)          # semseg's predictions do not change
    train_task(net, "depth", dataset, steps=1000)
    deployable = fold_model(net["depth"])             # plain Conv2D network
"""

from zippy_tf.multitask.deeplab import (
    TASK_CHANNELS, VARIANTS, MultiTaskConfig, MultiTaskNetwork, add_task, build_multitask, deeplab_trunk, load_network,
    parameter_counts, save_network,
)
from zippy_tf.multitask.fold import fold_conv, fold_model, fold_network, folded_weights
from zippy_tf.multitask.layers import (
    FilterBank, L2Normalize, ParallelResidualAdapter, ReparamConv2D, ResizeLike, SeriesResidualAdapter, TaskConv2D,
)
from zippy_tf.multitask.losses import LOSS_WEIGHTS, PolyDecay, sgd, task_loss
from zippy_tf.multitask.resnet import load_torchvision_weights, resnet
from zippy_tf.multitask.response_init import reparameterize, response_bases, response_initialize
from zippy_tf.multitask.training import MultiTaskTrainer, train_joint, train_task

__all__ = ["FilterBank", "L2Normalize", "LOSS_WEIGHTS", "MultiTaskConfig", "MultiTaskNetwork", "MultiTaskTrainer",
           "ParallelResidualAdapter", "PolyDecay", "ReparamConv2D", "ResizeLike", "SeriesResidualAdapter",
           "TASK_CHANNELS", "TaskConv2D", "VARIANTS", "add_task", "build_multitask", "deeplab_trunk", "fold_conv",
           "fold_model", "fold_network", "folded_weights", "load_network", "load_torchvision_weights",
           "parameter_counts", "reparameterize", "resnet", "response_bases", "response_initialize", "save_network",
           "sgd", "task_loss", "train_joint", "train_task"]
