"""RCM (thesis ch. 2): reparameterized convolutions for incremental multi-task learning.

- layers: :class:`FilterBank` (the frozen shared W_s), :class:`ReparamConv2D` (W_t·W_s, optional NFF), the Series and
  Parallel Residual Adapter baselines;
- :func:`response_initialize` (RI) over any Keras model with convolutions;
- :func:`fold_model` / :func:`fold_network`: a task's path as a plain Keras network (export with
  ``zippy_tf.export.convert``);
- :func:`build_multitask`: task-conditional DeepLabv3+ on ResNet-18 in every variant of the thesis's tables,
  :func:`add_task` for incremental learning, :func:`parameter_counts`, :func:`deeplab_trunk` for CompL;
- losses and :func:`train_task` / :func:`train_joint`;
- the A4 metrics (:class:`SegmentationMeter`, :class:`DepthMeter`, ... and :func:`delta_m`).

CompL (thesis ch. 3): :class:`CompLModel` trains a dense target jointly with a self-supervised auxiliary (rotation,
MoCo v2, DenseCL) on any trunk, :func:`label_subset` picks nested label fractions, and :func:`deployable` drops the
auxiliary for export.

Example (incremental)::

    net = build_multitask(MultiTaskConfig("rcm", "nyud", tasks=("semseg",)), encoder=resnet18, ri_images=images)
    train_task(net, "semseg", dataset, steps=1000)
    add_task(net, "depth", encoder=resnet18)          # semseg's predictions do not change
    train_task(net, "depth", dataset, steps=1000)
    deployable = fold_model(net["depth"])             # plain Conv2D network
"""

from zippy_tf.multitask.compl import (
    CompLModel, compl_splits, deployable, label_subset, supervised_head, target_model, task_target_loss,
)
from zippy_tf.multitask.deeplab import (
    TASK_CHANNELS, VARIANTS, MultiTaskConfig, MultiTaskNetwork, add_task, build_multitask, deeplab_trunk, load_network,
    parameter_counts, save_network,
)
from zippy_tf.multitask.fold import fold_conv, fold_model, fold_network, folded_weights
from zippy_tf.multitask.layers import (
    FilterBank, L2Normalize, ParallelResidualAdapter, ReparamConv2D, ResizeLike, SeriesResidualAdapter, TaskConv2D,
)
from zippy_tf.multitask.losses import LOSS_WEIGHTS, PolyDecay, sgd, task_loss
from zippy_tf.multitask.metrics import (
    EDGE_MAX_DIST, TASK_METRIC, DepthMeter, EdgeMeter, NormalsMeter, SaliencyMeter, SegmentationMeter, delta_m,
    make_meter,
)
from zippy_tf.multitask.resnet import load_torchvision_weights, resnet
from zippy_tf.multitask.response_init import reparameterize, response_bases, response_initialize
from zippy_tf.multitask.ssl import SSL_TASKS, SSL_WEIGHTS, GridPooling, densecl_loss, info_nce
from zippy_tf.multitask.training import MultiTaskTrainer, train_joint, train_task
from zippy_tf.multitask.views import VIEW_PRESETS, ViewConfig, folder_images, joint_dataset, ssl_dataset, ssl_views

__all__ = ["add_task", "build_multitask", "compl_splits", "CompLModel", "deeplab_trunk", "delta_m", "densecl_loss",
           "deployable", "DepthMeter", "EDGE_MAX_DIST", "EdgeMeter", "FilterBank", "fold_conv", "fold_model",
           "fold_network", "folded_weights", "folder_images", "GridPooling", "info_nce", "joint_dataset", "L2Normalize",
           "label_subset", "load_network", "load_torchvision_weights", "LOSS_WEIGHTS", "make_meter", "MultiTaskConfig",
           "MultiTaskNetwork", "MultiTaskTrainer", "NormalsMeter", "ParallelResidualAdapter", "parameter_counts",
           "PolyDecay", "ReparamConv2D", "reparameterize", "ResizeLike", "resnet", "response_bases",
           "response_initialize", "SaliencyMeter", "save_network", "SegmentationMeter", "SeriesResidualAdapter", "sgd",
           "ssl_dataset", "SSL_TASKS", "ssl_views", "SSL_WEIGHTS", "supervised_head", "target_model", "TASK_CHANNELS",
           "task_loss", "TASK_METRIC", "task_target_loss", "TaskConv2D", "train_joint", "train_task", "VARIANTS",
           "VIEW_PRESETS", "ViewConfig"]
