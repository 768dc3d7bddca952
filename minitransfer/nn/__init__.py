"""Modules: the Module base class and the layers models are built from."""
from minitransfer.nn.layers import Dropout, Embedding, LayerNorm, Linear, normal_init
from minitransfer.nn.module import Module, ModuleList, Parameter

__all__ = ["Module", "ModuleList", "Parameter", "Linear", "Embedding", "LayerNorm", "Dropout", "normal_init"]
