r"""Reparameterized convolutions (RC, thesis §2.3.3) and the Residual Adapter baselines, as Keras layers.

A task-specific convolution is written as a frozen, shared filter bank $W_s$ (a k×k convolution without bias) and a
small task-specific part:

- :class:`ReparamConv2D` (RC): $y = W_t^i\,(W_s x)$, with $W_t^i$ a 1×1 convolution cout→cout and no non-linearity
  in between; with ``nff=True`` (Normalized Feature Fusion, Eq. 2.3) each output row of $W_t^i$ is
  $g\,v/\lVert v\rVert$;
- :class:`SeriesResidualAdapter`: $y = W_s x + A_i(\mathrm{BN}_i(W_s x))$;
- :class:`ParallelResidualAdapter`: $y = W_s x + A_i(x)$, $A_i$ a 1×1 convolution cin→cout with the stride of $W_s$.

In the networks of the thesis every one of them is followed by a per-task BatchNormalization (a separate layer).

**Design: one layer object per task, all sharing one frozen** :class:`FilterBank` **object.** Keras shares weights
between models by sharing layer objects, so each task gets its own functional model whose layers are the shared
filter banks (frozen) and that task's own layers. The alternative, one layer holding every task's modulator and a
``task`` call argument, puts every task's modulators in every task's ``trainable_weights``; ``fit`` would then
depend on the optimizer silently skipping variables without gradients (and on nobody adding a regularizer). With
separate layer objects a task model's ``trainable_weights`` are exactly its task's, BatchNorm statistics and
optimizer state of the other tasks are out of its graph, and adding a task creates new layers without touching any
existing one, so the old tasks stay bit-identical by construction. :class:`FilterBank` is frozen whatever its
``trainable`` flag says (``model.trainable = True`` cannot unfreeze it).

Example, RC in one's own network (two tasks, one filter bank)::

    from zippy_tf import keras
    from zippy_tf.multitask import FilterBank, ReparamConv2D

    bank = FilterBank(32, 3, padding="same", name="conv")          # W_s: shared by every task, never trained
    inputs = keras.Input((64, 64, 3))

    def task_model(task, channels):
        x = ReparamConv2D(bank, nff=True, name=f"{task}_conv")(inputs)  # W_t of this task only
        x = keras.layers.BatchNormalization(name=f"{task}_bn")(x)
        x = keras.layers.ReLU()(x)
        return keras.Model(inputs, keras.layers.Conv2D(channels, 1, name=f"{task}_head")(x), name=task)

    models = {"semseg": task_model("semseg", 5), "depth": task_model("depth", 1)}
    # models["depth"].fit(...) trains W_t, BN and head of "depth" only; task_model("edge", 1) adds a task later.

A layer's ``get_config`` holds its filter bank's config, so ``from_config`` gives a layer with its own copy of
$W_s$: right for one task's model; a multi-task network is rebuilt by its builder
(:func:`zippy_tf.multitask.deeplab.build_multitask`), which shares the banks again.

Deployment: :meth:`TaskConv2D.folded_kernel` gives the equivalent plain k×k kernel (and bias); the explicit
transforms are in :mod:`zippy_tf.multitask.fold`.
"""

import numpy as np

from zippy_tf._compat import keras, register, tf
from zippy_tf.errors import UserError


@register
class FilterBank(keras.layers.Conv2D):
    """The shared filter bank $W_s$: a k×k ``Conv2D`` without bias that is never trained.

    Takes ``Conv2D``'s arguments (``filters``, ``kernel_size``, ``strides``, ``padding``, ``dilation_rate``, ...);
    ``use_bias`` and ``trainable`` are fixed.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        kwargs.pop("use_bias", None)
        kwargs.pop("trainable", None)
        super().__init__(filters, kernel_size, use_bias=False, trainable=False, **kwargs)

    @property
    def trainable(self):
        return False

    @trainable.setter
    def trainable(self, value):
        self._trainable = False  # Keras's recursive setter writes _trainable directly; the getter ignores it


def _unit_kernel(channels):
    return np.eye(channels, dtype=np.float32)[None, None]


class TaskConv2D(keras.layers.Layer):
    """Base of the task-specific convolutions: a shared :class:`FilterBank` plus a small task-specific part.

    Args:
        filter_bank: the :class:`FilterBank` shared by the tasks (or its ``get_config()``).
    """

    def __init__(self, filter_bank, **kwargs):
        super().__init__(**kwargs)
        if isinstance(filter_bank, dict):
            filter_bank = FilterBank.from_config(filter_bank)
        if not isinstance(filter_bank, FilterBank):
            raise UserError(f"{type(self).__name__}: filter_bank must be a FilterBank layer, got "
                            f"{type(filter_bank).__name__}")
        self.filter_bank = filter_bank

    @property
    def filters(self):
        return self.filter_bank.filters

    def _build_bank(self, input_shape):
        if not self.filter_bank.built:
            with tf.name_scope(self.filter_bank.name):
                self.filter_bank.build(input_shape)

    def folded_kernel(self):
        """(kernel, bias): the k×k kernel (Keras layout kh, kw, cin, cout) and bias (or None) of the equivalent
        plain convolution, in inference mode."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "filter_bank": self.filter_bank.get_config()}


def _matmul_1x1(x, kernel):
    """A 1×1 convolution with a (1, 1, cin, cout) kernel."""
    return tf.nn.conv2d(x, kernel, strides=1, padding="VALID")


@register
class ReparamConv2D(TaskConv2D):
    r"""Reparameterized Convolution: $y = W_t\,(W_s x)$ with the frozen shared $W_s$ and this task's 1×1 $W_t$.

    $W_t$ starts as the identity (the layer then computes the filter bank's convolution); Response Initialization
    (:mod:`zippy_tf.multitask.response_init`) sets $W_s \leftarrow U^\top W$, $W_t \leftarrow U$ through
    :meth:`set_modulator` and the bank's weights.

    Args:
        filter_bank: the shared :class:`FilterBank` ($W_s$).
        nff: Normalized Feature Fusion: $W_t$'s row for output channel $o$ is $g_o\,v_o/\lVert v_o\rVert$ (weight
            normalisation over the output dimension), $g$ and $v$ initialised so that the effective $W_t$ equals
            the initial matrix.
    """

    def __init__(self, filter_bank, nff=False, **kwargs):
        super().__init__(filter_bank, **kwargs)
        self.nff = bool(nff)

    def build(self, input_shape):
        self._build_bank(input_shape)
        unit = keras.initializers.Constant(_unit_kernel(self.filters))
        shape = (1, 1, self.filters, self.filters)
        if self.nff:
            self.v = self.add_weight("v", shape=shape, initializer=unit)
            self.g = self.add_weight("g", shape=(self.filters,), initializer="ones")
        else:
            self.kernel = self.add_weight("kernel", shape=shape, initializer=unit)
        super().build(input_shape)

    def modulator(self):
        """The effective $W_t$ as a (1, 1, cout, cout) kernel tensor (input channel, output channel)."""
        if not self.nff:
            return self.kernel
        return self.g * self.v / tf.sqrt(tf.reduce_sum(tf.square(self.v), axis=(0, 1, 2)))  # each output row

    def set_modulator(self, kernel):
        """Sets $W_t$ (a (cout, cout) or (1, 1, cout, cout) array, Keras layout in → out); with NFF as
        $v = W_t$, $g = \\lVert v_o \\rVert$ so that the effective matrix is ``kernel``."""
        kernel = np.asarray(kernel, np.float32).reshape(1, 1, self.filters, self.filters)
        if self.nff:
            self.v.assign(kernel)
            self.g.assign(np.sqrt(np.sum(np.square(kernel), axis=(0, 1, 2))))
        else:
            self.kernel.assign(kernel)

    def call(self, inputs):
        return _matmul_1x1(self.filter_bank(inputs), self.modulator())

    def folded_kernel(self):
        modulator = self.modulator().numpy()[0, 0]
        return np.tensordot(self.filter_bank.kernel.numpy(), modulator, axes=([3], [0])), None

    def get_config(self):
        return {**super().get_config(), "nff": self.nff}


@register
class SeriesResidualAdapter(TaskConv2D):
    r"""Series Residual Adapter: $y = W_s x + A(\mathrm{BN}(W_s x))$, $A$ a 1×1 cout→cout convolution.

    $A$ starts at zero, so the layer starts as the filter bank's convolution. ``BN`` is this task's own
    BatchNormalization (a sub-layer ``adapter_bn``).
    """

    def build(self, input_shape):
        self._build_bank(input_shape)
        self.adapter_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="adapter_bn")  # PyTorch's
        with tf.name_scope("adapter_bn"):
            self.adapter_bn.build(self.filter_bank.compute_output_shape(input_shape))
        self.adapter = self.add_weight("adapter", shape=(1, 1, self.filters, self.filters), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs, training=None):
        shared = self.filter_bank(inputs)
        return shared + _matmul_1x1(self.adapter_bn(shared, training=training), self.adapter)

    def folded_kernel(self):
        bn = self.adapter_bn
        scale = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
        shift = bn.beta.numpy() - bn.moving_mean.numpy() * scale
        adapter = self.adapter.numpy()[0, 0]
        mixing = np.eye(self.filters, dtype=np.float32) + scale[:, None] * adapter  # y = s (I + diag(a) A) + c A
        return np.tensordot(self.filter_bank.kernel.numpy(), mixing, axes=([3], [0])), shift @ adapter


@register
class ParallelResidualAdapter(TaskConv2D):
    r"""Parallel Residual Adapter: $y = W_s x + A(x)$, $A$ a 1×1 cin→cout convolution with $W_s$'s stride.

    $A$ reads the input pixel under the centre tap of $W_s$'s window (odd kernel sizes): with ``padding="valid"``
    it sees the input cropped by $(k-1)d/2$ on each side (the PyTorch reference pads explicitly, then applies
    both); with ``"same"`` it is a "same" 1×1 convolution. $A$ starts at zero.
    """

    def __init__(self, filter_bank, **kwargs):
        super().__init__(filter_bank, **kwargs)
        if any(k % 2 == 0 for k in self.filter_bank.kernel_size):
            raise UserError(f"ParallelResidualAdapter needs an odd kernel_size, got {self.filter_bank.kernel_size}")

    def build(self, input_shape):
        self._build_bank(input_shape)
        self.adapter = self.add_weight("adapter", shape=(1, 1, int(input_shape[-1]), self.filters),
                                       initializer="zeros")
        super().build(input_shape)

    def _centre_offset(self):
        bank = self.filter_bank
        return [(k - 1) * d // 2 for k, d in zip(bank.kernel_size, bank.dilation_rate)]

    def call(self, inputs):
        bank = self.filter_bank
        x = inputs
        if bank.padding == "valid":
            (oy, ox), shape = self._centre_offset(), tf.shape(inputs)
            x = inputs[:, oy:shape[1] - oy, ox:shape[2] - ox]
        return bank(inputs) + tf.nn.conv2d(x, self.adapter, bank.strides, bank.padding.upper())

    def folded_kernel(self):
        bank = self.filter_bank
        if bank.padding == "same" and max(bank.strides) > 1:
            raise UserError(f"{self.name}: a parallel adapter with padding='same' and stride {bank.strides} does "
                            "not fold (TF pads a strided 'same' window asymmetrically); use padding='valid' after an "
                            "explicit ZeroPadding2D, as the ResNet builder does")
        kernel = bank.kernel.numpy().copy()
        kernel[(bank.kernel_size[0] - 1) // 2, (bank.kernel_size[1] - 1) // 2] += self.adapter.numpy()[0, 0]
        return kernel, None


@register
class ResizeLike(keras.layers.Layer):
    """Bilinear resize of ``inputs[0]`` to the spatial size of ``inputs[1]`` (half-pixel centres, PyTorch's
    ``align_corners=False``)."""

    def call(self, inputs):
        source, like = inputs
        return tf.image.resize(source, tf.shape(like)[1:3], method="bilinear")


@register
class L2Normalize(keras.layers.Layer):
    """Unit length over channels: the surface-normal head's output."""

    def call(self, inputs):
        return tf.math.l2_normalize(inputs, axis=-1)


TASK_LAYERS = (ReparamConv2D, SeriesResidualAdapter, ParallelResidualAdapter)

__all__ = ["FilterBank", "L2Normalize", "ParallelResidualAdapter", "ReparamConv2D", "ResizeLike",
           "SeriesResidualAdapter", "TASK_LAYERS", "TaskConv2D"]
