"""The mesh estimate against the RTL on the 2x2 mesh of test tiles: every sharding and weight loading,
cycles within 5 %, the tile programs' cycles exact, the memory ports' bytes exact."""

import numpy as np
import pytest

from tests.cases import TILE, seed_of, tensors
from tilelab.api.conv import Requant
from tilelab.api.mesh import conv2d_mesh
from tilelab.estimate import estimate_conv_mesh
from tilelab.pe_models.config import MeshConfig
from tilelab.reference.layers import Conv2dSpec

MESH = MeshConfig(rows=2, cols=2, tile=TILE, eltwise=True)

#: name, (n, h, w, cin, cout, k, stride, padding, groups, out), shard, weight_load
CASES = [
    *[("3x3-s2-c64", (2, 8, 8, 64, 32, 3, 2, 1, 1, "int8"), s, wl)
      for s in ("height", "width", "block") for wl in ("stream", "multicast")],
    ("1x1-int32", (1, 8, 8, 32, 64, 1, 1, 0, 1, "int32"), "height", "multicast"),
    ("1x1-int32", (1, 8, 8, 32, 64, 1, 1, 0, 1, "int32"), "block", "stream"),
    ("dw-c32", (1, 8, 8, 32, 32, 3, 1, 1, 32, "int32"), "block", "stream"),
    ("grouped-g4-c32", (1, 8, 8, 32, 32, 3, 1, 1, 8, "int8"), "block", "stream"),     # the grouped form
    ("grouped-g2-c16", (1, 8, 8, 16, 16, 3, 1, 1, 8, "int8"), "height", "multicast"),
    ("5x5-c16", (1, 4, 4, 16, 16, 5, 1, 2, 1, "int8"), "height", "multicast"),
    # ragged: 24 input channels (input slices of whole words), 30 output channels, 49 output pixels
    ("ragged-c24-c30", (1, 7, 7, 24, 30, 3, 1, 1, 1, "int8"), "width", "stream"),
    ("ragged-c24-c30", (1, 7, 7, 24, 30, 3, 1, 1, 1, "int8"), "block", "multicast"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES])
def test_mesh_estimate_within_tolerance_of_rtl(case):
    name, (n, h, w_, cin, cout, k, s, p, g, out), shard, weight_load = case
    x, w, b = tensors(n, h, w_, cin, cout, k, groups=g, seed=seed_of(name))
    rq = None
    if out == "int8":
        rng = np.random.default_rng(seed_of(name, "rq"))
        rq = Requant(rng.integers(1 << 14, 1 << 15, cout), rng.integers(18, 22, cout), 3)
    _, st = conv2d_mesh(x, w, b, stride=s, padding=p, groups=g, requant=rq, activation="relu" if rq else None,
                        out=out, mesh=MESH, shard=shard, weight_load=weight_load)
    assert st.bit_exact
    spec = Conv2dSpec.from_tensors(x, w, b, stride=s, padding=p, groups=g)
    est = estimate_conv_mesh(spec, MESH, shard=shard, weight_load=weight_load, out=out)
    error = (est.cycles - st.cycles) / st.cycles
    assert abs(error) <= 0.05, f"estimate {est.cycles}, RTL {st.cycles} ({100 * error:+.1f} %)"
    for t in st.tiles:
        node = est.nodes[t["i"], t["j"]]
        assert node["tile_cycles"] == t["tile_cycles"] and node["runs"] == t["runs"]
    assert est.ext_bytes_read == st.ext_bytes_read and est.macs == st.macs == spec.macs
    assert st.cycles >= est.physical_bound and est.bound in ("tiles", "data movement")


def test_mesh_estimate_arguments():
    spec = Conv2dSpec(n=1, h=8, w=8, cin=32, cout=32, kh=3, kw=3, padding=1)
    with pytest.raises(TypeError, match="MeshConfig"):
        estimate_conv_mesh(spec, TILE)
    with pytest.raises(ValueError, match="'int4'"):
        estimate_conv_mesh(spec, MESH, out="int4")
    from tilelab.compile.mesh import MeshError

    with pytest.raises(MeshError, match="shard must be one of"):
        estimate_conv_mesh(spec, MESH, shard="diagonal")
