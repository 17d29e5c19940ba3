"""A small graph IR for CNN inference: nodes with inferred, checked shapes.

A :class:`Graph` is built node by node; each builder method checks its inputs, infers the output
shape and returns the new node's name, so a graph is always consistent::

    g = Graph("tiny")
    x = g.input("image", (1, 32, 32, 3))
    x = g.conv2d("conv1", x, cout=16, kernel=3, padding=1, relu=True)
    x = g.global_avg_pool("pool", x)
    x = g.flatten("flatten", x)
    g.linear("fc", x, nout=10)

Activation shapes are NHWC ``(N, H, W, C)`` or ``(N, K)`` after :meth:`Graph.flatten` (which
flattens in NHWC order). A bad shape raises :class:`GraphError` naming the node.

Node kinds (:data:`OPS`), each computed by one function of :mod:`tilelab.reference.golden`:

- ``conv2d``: ``spec`` a :class:`~tilelab.reference.layers.Conv2dSpec`; fused ``bias`` (int32 added
  to the accumulator), ``requant`` (int8 output; otherwise int32 accumulators) and ``relu``;
- ``linear``: ``spec`` a :class:`~tilelab.reference.layers.LinearSpec`; fused flags as conv2d;
- ``batch_norm``, ``relu``, ``flatten``, ``global_avg_pool``: no parameters besides the node's;
- ``max_pool``, ``avg_pool``: ``spec`` a :class:`~tilelab.reference.layers.PoolSpec`;
- ``add``: residual add of two same-shape tensors (:func:`~tilelab.reference.golden.add_requant`),
  fused ``relu``;
- ``relu6``: ``min(max(x, 0), 6)`` (:func:`~tilelab.reference.golden.relu6`);
- ``hard_swish``, ``silu``, ``sigmoid``: element-wise nonlinearities, each a 256-entry int8 table
  of its float function (:func:`~tilelab.reference.golden.activation_table`);
- ``mul``: ``x`` (NHWC) times ``s`` of shape ``(N, 1, 1, C)`` broadcast over H and W, or of
  ``x``'s shape (:func:`~tilelab.reference.golden.mul_channel`: squeeze-and-excitation's scale);
- ``concat``: NHWC inputs of equal N, H, W side by side along C
  (:func:`~tilelab.reference.golden.concat_channels`);
- ``split``: the channels ``attrs["start"] .. attrs["stop"] - 1`` of its input
  (:func:`~tilelab.reference.golden.channel_split`; a split into k parts is k such nodes);
- ``channel_shuffle``: ShuffleNet's shuffle of ``attrs["groups"]`` channel groups
  (:func:`~tilelab.reference.golden.channel_shuffle`);
- ``input``: the graph input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tilelab.checks import check_int
from tilelab.reference.layers import Conv2dSpec, LinearSpec, PoolSpec, as_pair

__all__ = ["ACTIVATION_OPS", "OPS", "Graph", "GraphError", "Node"]

OPS = (
    "input",
    "conv2d",
    "batch_norm",
    "relu",
    "max_pool",
    "avg_pool",
    "global_avg_pool",
    "add",
    "linear",
    "flatten",
    "relu6",
    "hard_swish",
    "silu",
    "sigmoid",
    "mul",
    "concat",
    "split",
    "channel_shuffle",
)

#: Element-wise nonlinearities that keep their input's shape.
ACTIVATION_OPS = ("relu", "relu6", "hard_swish", "silu", "sigmoid")


class GraphError(ValueError):
    """A node cannot be added: bad input shape or parameters. ``node`` names it."""

    def __init__(self, node: str, op: str, detail: str):
        super().__init__(f"node {node!r} ({op}): {detail}")
        self.node = node
        self.op = op
        self.detail = detail


@dataclass(frozen=True)
class Node:
    """One node of a :class:`Graph`.

    Parameters
    ----------
    name : str
        Unique in its graph.
    op : str
        One of :data:`OPS`.
    inputs : tuple of str
        Names of the nodes it reads.
    shape : tuple of int
        Output shape, NHWC or ``(N, K)``.
    spec : Conv2dSpec or LinearSpec or PoolSpec or None
        The layer's shape and parameters, for conv2d, linear, max_pool and avg_pool.
    bias, requant, relu : bool
        Fused steps of conv2d and linear (``relu`` also for add).
    attrs : dict
        Parameters of the other kinds: ``start`` / ``stop`` (split), ``groups`` (channel_shuffle).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    spec: Conv2dSpec | LinearSpec | PoolSpec | None = None
    bias: bool = False
    requant: bool = False
    relu: bool = False
    attrs: dict = field(default_factory=dict, hash=False)


class Graph:
    """An ordered (topological by construction) collection of :class:`Node`.

    Parameters
    ----------
    name : str
        The model name.
    """

    def __init__(self, name: str):
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, not {name!r}")
        self.name = name
        self._nodes: dict[str, Node] = {}

    # -- access -------------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[Node, ...]:
        """All nodes in the order they were added."""
        return tuple(self._nodes.values())

    @property
    def output(self) -> Node:
        """The last node added."""
        if not self._nodes:
            raise ValueError(f"graph {self.name!r} is empty")
        return next(reversed(self._nodes.values()))

    def __getitem__(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"graph {self.name!r} has no node {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self):
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self)} nodes)"

    # -- builders -----------------------------------------------------------------------------

    def input(self, name: str, shape) -> str:
        """Add the graph input, NHWC ``(N, H, W, C)``.

        Returns
        -------
        str
            ``name``.
        """
        self._check_name(name, "input")
        if not isinstance(shape, (tuple, list)) or len(shape) != 4:
            raise GraphError(name, "input", f"shape must be (N, H, W, C), not {shape!r}")
        try:
            shape = tuple(check_int("shape element", v, 1) for v in shape)
        except (TypeError, ValueError) as error:
            raise GraphError(name, "input", f"shape must be positive integers, not {shape!r}") from error
        return self._add(Node(name, "input", (), shape))

    def conv2d(
        self,
        name,
        x,
        *,
        cout,
        kernel,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        requant=True,
        relu=False,
    ) -> str:
        """Add a 2-D convolution reading ``x`` (NHWC), with optional fused bias, requant and ReLU.

        Returns
        -------
        str
            ``name``.
        """
        n, h, w, c = self._nhwc(name, "conv2d", x)
        kh, kw = self._guard(name, "conv2d", as_pair, kernel, "kernel")
        spec = self._guard(
            name, "conv2d", Conv2dSpec,
            n=n, h=h, w=w, cin=c, cout=cout, kh=kh, kw=kw,
            stride=stride, padding=padding, dilation=dilation, groups=groups,
        )  # fmt: skip
        if relu and not requant:
            raise GraphError(name, "conv2d", "a fused relu needs requant=True (it acts on int8 outputs)")
        node = Node(name, "conv2d", (x,), spec.output_shape, spec, bool(bias), bool(requant), bool(relu))
        return self._add(node)

    def linear(self, name, x, *, nout, bias=True, requant=True, relu=False) -> str:
        """Add a fully connected layer reading ``x`` of shape ``(N, K)``.

        Returns
        -------
        str
            ``name``.
        """
        shape = self._shape_of(name, "linear", x)
        if len(shape) != 2:
            raise GraphError(name, "linear", f"needs a 2-D input (N, K), not shape {shape!r} from node {x!r}")
        spec = self._guard(name, "linear", LinearSpec, n=shape[0], k=shape[1], nout=nout)
        if relu and not requant:
            raise GraphError(name, "linear", "a fused relu needs requant=True (it acts on int8 outputs)")
        node = Node(name, "linear", (x,), spec.output_shape, spec, bool(bias), bool(requant), bool(relu))
        return self._add(node)

    def batch_norm(self, name, x) -> str:
        """Add a per-channel batch normalization of ``x`` (NHWC).

        Returns
        -------
        str
            ``name``.
        """
        return self._add(Node(name, "batch_norm", (x,), self._nhwc(name, "batch_norm", x)))

    def relu(self, name, x) -> str:
        """Add a ReLU of ``x`` (any shape).

        Returns
        -------
        str
            ``name``.
        """
        return self._add(Node(name, "relu", (x,), self._shape_of(name, "relu", x)))

    def max_pool(self, name, x, *, kernel, stride=None, padding=0) -> str:
        """Add a max pooling of ``x`` (NHWC); the stride defaults to the window.

        Returns
        -------
        str
            ``name``.
        """
        return self._pool(name, "max_pool", x, kernel, stride, padding)

    def avg_pool(self, name, x, *, kernel, stride=None, padding=0) -> str:
        """Add an average pooling of ``x`` (NHWC); the stride defaults to the window.

        Returns
        -------
        str
            ``name``.
        """
        return self._pool(name, "avg_pool", x, kernel, stride, padding)

    def global_avg_pool(self, name, x) -> str:
        """Add a global average pooling, ``(N, H, W, C)`` to ``(N, 1, 1, C)``.

        Returns
        -------
        str
            ``name``.
        """
        n, _, _, c = self._nhwc(name, "global_avg_pool", x)
        return self._add(Node(name, "global_avg_pool", (x,), (n, 1, 1, c)))

    def add(self, name, a, b, *, relu=False) -> str:
        """Add a residual addition of ``a`` and ``b`` (same shape), with optional fused ReLU.

        Returns
        -------
        str
            ``name``.
        """
        shape_a = self._shape_of(name, "add", a)
        shape_b = self._shape_of(name, "add", b)
        if shape_a != shape_b:
            raise GraphError(
                name,
                "add",
                f"inputs must have the same shape, not {shape_a!r} from {a!r} and {shape_b!r} from {b!r}",
            )
        return self._add(Node(name, "add", (a, b), shape_a, relu=bool(relu)))

    def relu6(self, name, x) -> str:
        """Add a ReLU6, ``min(max(x, 0), 6)``, of ``x`` (any shape).

        Returns
        -------
        str
            ``name``.
        """
        return self._add(Node(name, "relu6", (x,), self._shape_of(name, "relu6", x)))

    def hard_swish(self, name, x) -> str:
        """Add a hard-swish, ``x · relu6(x + 3) / 6``, of ``x`` (any shape).

        Returns
        -------
        str
            ``name``.
        """
        return self._add(Node(name, "hard_swish", (x,), self._shape_of(name, "hard_swish", x)))

    def silu(self, name, x) -> str:
        """Add a SiLU (swish), ``x · sigmoid(x)``, of ``x`` (any shape).

        Returns
        -------
        str
            ``name``.
        """
        return self._add(Node(name, "silu", (x,), self._shape_of(name, "silu", x)))

    def sigmoid(self, name, x) -> str:
        """Add a logistic sigmoid of ``x`` (any shape).

        Returns
        -------
        str
            ``name``.
        """
        return self._add(Node(name, "sigmoid", (x,), self._shape_of(name, "sigmoid", x)))

    def mul(self, name, x, s) -> str:
        """Add a channel-wise multiply: ``x`` (NHWC) times ``s``, ``(N, 1, 1, C)`` or ``x``'s shape.

        Returns
        -------
        str
            ``name``.
        """
        n, h, w, c = self._nhwc(name, "mul", x)
        shape_s = self._shape_of(name, "mul", s)
        if shape_s not in ((n, 1, 1, c), (n, h, w, c)):
            raise GraphError(
                name, "mul",
                f"scale {s!r} must have shape {(n, 1, 1, c)!r} or {(n, h, w, c)!r} to multiply {x!r}, "
                f"not {shape_s!r}",
            )  # fmt: skip
        return self._add(Node(name, "mul", (x, s), (n, h, w, c)))

    def concat(self, name, inputs) -> str:
        """Add a concatenation of NHWC tensors along the channels (equal N, H and W).

        Returns
        -------
        str
            ``name``.
        """
        if isinstance(inputs, str) or not isinstance(inputs, (tuple, list)) or len(inputs) < 2:
            raise GraphError(name, "concat", f"needs a list of at least two inputs, not {inputs!r}")
        shapes = [self._nhwc(name, "concat", x) for x in inputs]
        for x, shape in zip(inputs, shapes, strict=True):
            if shape[:3] != shapes[0][:3]:
                raise GraphError(
                    name, "concat",
                    f"inputs must have the same (N, H, W), not {shapes[0][:3]!r} from {inputs[0]!r} and "
                    f"{shape[:3]!r} from {x!r}",
                )  # fmt: skip
        shape = shapes[0][:3] + (sum(s[3] for s in shapes),)
        return self._add(Node(name, "concat", tuple(inputs), shape))

    def split(self, name, x, *, start, stop) -> str:
        """Add a channel slice of ``x`` (NHWC): channels ``start .. stop - 1``.

        Returns
        -------
        str
            ``name``.
        """
        n, h, w, c = self._nhwc(name, "split", x)
        for key, v in (("start", start), ("stop", stop)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise GraphError(name, "split", f"{key} must be an integer, not {v!r}")
        if not 0 <= start < stop <= c:
            raise GraphError(
                name, "split", f"channels {start!r}:{stop!r} must satisfy 0 <= start < stop <= {c} ({x!r}'s channels)"
            )
        return self._add(Node(name, "split", (x,), (n, h, w, stop - start), attrs={"start": start, "stop": stop}))

    def channel_shuffle(self, name, x, *, groups) -> str:
        """Add ShuffleNet's channel shuffle of ``x`` (NHWC) over ``groups`` groups.

        Returns
        -------
        str
            ``name``.
        """
        shape = self._nhwc(name, "channel_shuffle", x)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or shape[3] % groups:
            raise GraphError(
                name, "channel_shuffle", f"groups must be a positive divisor of {x!r}'s {shape[3]} channels, "
                f"not {groups!r}"
            )
        return self._add(Node(name, "channel_shuffle", (x,), shape, attrs={"groups": groups}))

    def flatten(self, name, x) -> str:
        """Add a flatten, ``(N, H, W, C)`` to ``(N, H·W·C)`` in NHWC order.

        Returns
        -------
        str
            ``name``.
        """
        n, h, w, c = self._nhwc(name, "flatten", x)
        return self._add(Node(name, "flatten", (x,), (n, h * w * c)))

    # -- internals ----------------------------------------------------------------------------

    def _check_name(self, name, op):
        if not isinstance(name, str) or not name:
            raise TypeError(f"node name must be a non-empty string, not {name!r}")
        if name in self._nodes:
            raise GraphError(name, op, "a node of that name already exists")
        if op != "input" and not self._nodes:
            raise GraphError(name, op, "the graph has no input yet")

    def _add(self, node: Node) -> str:
        self._check_name(node.name, node.op)
        self._nodes[node.name] = node
        return node.name

    def _shape_of(self, name, op, x) -> tuple[int, ...]:
        self._check_name(name, op)
        if x not in self._nodes:
            raise GraphError(name, op, f"input {x!r} is not a node of graph {self.name!r}")
        return self._nodes[x].shape

    def _nhwc(self, name, op, x) -> tuple[int, int, int, int]:
        shape = self._shape_of(name, op, x)
        if len(shape) != 4:
            raise GraphError(
                name, op, f"needs an NHWC input (N, H, W, C), not shape {shape!r} from node {x!r}"
            )
        return shape

    def _guard(self, name, op, build, *args, **kwargs):
        try:
            return build(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"node {name!r} ({op}): {error}") from error
        except ValueError as error:
            raise GraphError(name, op, str(error)) from error

    def _pool(self, name, op, x, kernel, stride, padding) -> str:
        n, h, w, c = self._nhwc(name, op, x)
        kh, kw = self._guard(name, op, as_pair, kernel, "kernel")
        spec = self._guard(
            name, op, PoolSpec, n=n, h=h, w=w, c=c, kh=kh, kw=kw, stride=stride, padding=padding
        )
        return self._add(Node(name, op, (x,), spec.output_shape, spec))
