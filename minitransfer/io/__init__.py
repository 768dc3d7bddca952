"""Reading and writing model files: safetensors, restricted torch pickles, and model directories."""
from minitransfer.io.checkpoint import (
    find_weights_file,
    load_config,
    load_state_dict,
    parse_size,
    save_checkpoint,
)
from minitransfer.io.safetensors_io import load_safetensors, save_safetensors
from minitransfer.io.torch_pickle import load_torch_bin

__all__ = [
    "find_weights_file",
    "load_config",
    "load_safetensors",
    "load_state_dict",
    "load_torch_bin",
    "parse_size",
    "save_checkpoint",
    "save_safetensors",
]
