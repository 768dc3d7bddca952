"""ops/dispatch.py: one switch picks every fused op's implementation, read and checked once, overridable in a block."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minitransfer import Tensor, ops
from minitransfer.errors import ConfigError
from minitransfer.ops import dispatch
from minitransfer.ops.attention import ReferenceAttention
from minitransfer.ops.varlen_attention import ReferenceVarlenAttention
from minitransfer.optim.adamw import FusedAdamWUpdate, ReferenceAdamWUpdate


def _f32(*shape):
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32), requires_grad=True)


# op name -> a call whose output's creator is the implementation dispatch picked
FUSED_OPS = {
    "GELU": lambda: ops.gelu(_f32(2, 3)),
    "BiasGELU": lambda: ops.bias_gelu(_f32(2, 3), _f32(3)),
    "LayerNorm": lambda: ops.layer_norm(_f32(2, 3), _f32(3), _f32(3)),
    "BiasDropoutResidualLayerNorm": lambda: ops.bias_dropout_residual_layer_norm(
        _f32(2, 3), _f32(3), _f32(2, 3), _f32(3), _f32(3), 1e-12, 0.1, True),
    "Dropout": lambda: ops.dropout(_f32(2, 3), 0.1, True),
    "Attention": lambda: ops.attention(_f32(1, 1, 3, 4), _f32(1, 1, 3, 4), _f32(1, 1, 3, 4)),
    "VarlenAttention": lambda: ops.varlen_attention(_f32(3, 1, 4), _f32(3, 1, 4), _f32(3, 1, 4), np.array([0, 3])),
}


@pytest.mark.parametrize("name", FUSED_OPS)
def test_every_fused_op_is_a_pair_behind_the_one_switch(name):
    assert type(FUSED_OPS[name]().creator).__name__ == f"Fused{name}"
    with dispatch.kernels("reference"):
        assert type(FUSED_OPS[name]().creator).__name__ == f"Reference{name}"
    assert type(FUSED_OPS[name]().creator).__name__ == f"Fused{name}"  # the block's setting ends with it


@pytest.mark.parametrize("op, reference", [(lambda x: ops.attention(x, x, x), ReferenceAttention),
                                           (lambda x: ops.varlen_attention(x[0], x[0], x[0], [0, 3]),
                                            ReferenceVarlenAttention)])
def test_arrays_no_kernel_takes_get_the_reference(op, reference):
    x = Tensor(np.zeros((1, 3, 1, 4), np.float16), requires_grad=True)
    assert type(op(x).creator) is reference


def test_adamw_picks_its_update_the_same_way():
    arrays = [np.zeros(3, np.float32) for _ in range(4)]
    assert dispatch.pick(ReferenceAdamWUpdate, [FusedAdamWUpdate], *arrays) is FusedAdamWUpdate
    with dispatch.kernels("reference"):
        assert dispatch.pick(ReferenceAdamWUpdate, [FusedAdamWUpdate], *arrays) is ReferenceAdamWUpdate


@pytest.mark.parametrize("environ, choice", [
    ({}, "auto"), ({"MINITRANSFER_KERNELS": ""}, "auto"), ({"MINITRANSFER_KERNELS": " Reference "}, "reference"),
    ({"MINITRANSFER_ATTENTION": "reference"}, "reference"),  # the older name is an alias
    ({"MINITRANSFER_KERNELS": "auto", "MINITRANSFER_ATTENTION": "reference"}, "auto"),  # the new name wins
])
def test_the_switch_reads_both_names(environ, choice):
    assert dispatch.read_switch(environ) == choice


@pytest.mark.parametrize("name", ["MINITRANSFER_KERNELS", "MINITRANSFER_ATTENTION"])
def test_a_bad_value_names_the_variable_and_the_allowed_values(name):
    with pytest.raises(ConfigError, match=f"{name}='fused'.*'reference'.*'auto'"):
        dispatch.read_switch({name: "fused"})
    with pytest.raises(ConfigError, match="'fast'"), dispatch.kernels("fast"):
        pass


def test_the_environment_is_read_once_in_a_fresh_process():
    script = ("import os, numpy as np\n"
              "from minitransfer import Tensor, ops\n"
              "x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)\n"
              "first = type(ops.gelu(x).creator).__name__\n"
              "os.environ['MINITRANSFER_KERNELS'] = 'auto'  # too late: the switch was read at the first op\n"
              "print(first, type(ops.gelu(x).creator).__name__)\n")
    env = {k: v for k, v in os.environ.items() if k not in dispatch.VARIABLES}
    done = subprocess.run([sys.executable, "-c", script], env={**env, "MINITRANSFER_KERNELS": "reference"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ReferenceGELU", "ReferenceGELU"]
