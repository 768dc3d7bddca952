"""Softmax cross-entropy with the label gather on the GPU (numba-cuda), forward and backward.

    loss   = sum_{r valid} (lse_r - logits[r, t_r]) / max(1, #valid),  lse_r = log sum_c exp(logits[r, c])
    g[r,c] = (exp(logits[r, c] - lse_r) - [c == t_r]) * g_loss / max(1, #valid)  for valid rows, 0 for ignored
    valid: t_r != ignore_index (-100)                 (as ops CrossEntropy, the reference: minitransfer/ops/losses.py)

Forward: one warp per row (max and sum of exponentials by warp shuffles, fp32) writes the row's loss and lse;
then one warp sums the row losses and counts the valid rows (fp64) into the mean, so the loss and the count stay
on the device (no host read-back). A target outside [0, classes) that is not ignore_index gives a nan row loss
(the NumPy path raises; a kernel cannot). Backward is one elementwise pass reading the saved lse and count.
ops CudaCrossEntropy runs these. float32 or float16 logits, fp32 arithmetic; the loss is float32 (mixed precision
keeps the loss in fp32).
FLOPs/bytes: forward reads the logits twice (~3 FLOPs and one exp per element); backward reads them once and
writes the gradient once. BERT's MLM head, (32 * 384, 30522) in fp16: 750 MB each way.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from .arrays_cuda import WARPS_PER_BLOCK, contiguous, empty, one_warp, per_element, per_row
from .reduce_cuda import warp_max, warp_sum

_NEG_INF = float32(-math.inf)


@cuda.jit
def _row_losses(logits, targets, ignore_index, losses, lse):
    rows, classes = logits.shape
    row = cuda.blockIdx.x * WARPS_PER_BLOCK + cuda.threadIdx.x // 32
    lane = cuda.threadIdx.x % 32
    width = classes if row < rows else 0  # a warp past the last row only joins the shuffles
    top = _NEG_INF
    for j in range(lane, width, 32):
        top = max(top, float32(logits[row, j]))
    top = warp_max(top)
    total = float32(0.0)
    for j in range(lane, width, 32):
        total += float32(math.exp(float32(logits[row, j]) - top))
    total = warp_sum(total)
    if lane == 0 and row < rows:
        row_lse = top + float32(math.log(total))
        lse[row] = row_lse
        t = targets[row]
        if t == ignore_index:
            losses[row] = float32(0.0)
        elif 0 <= t < classes:
            losses[row] = row_lse - float32(logits[row, t])
        else:
            losses[row] = float32(math.nan)


@cuda.jit
def _mean(losses, targets, ignore_index, loss, count):
    """One warp: loss[0] = the mean row loss over valid rows, count[0] = how many (at least 1)."""
    lane = cuda.threadIdx.x
    total = float64(0.0)
    valid = float64(0.0)
    for r in range(lane, losses.shape[0], 32):
        total += float64(losses[r])
        if targets[r] != ignore_index:
            valid += float64(1.0)
    total = warp_sum(total)
    valid = max(warp_sum(valid), float64(1.0))
    if lane == 0:
        loss[0] = total / valid
        count[0] = valid


@cuda.jit
def _backward(logits, targets, ignore_index, lse, count, g_loss, grad):
    rows, classes = logits.shape
    scale = float32(g_loss[0]) / float32(count[0])
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, rows * classes, stride):
        r, c = i // classes, i % classes
        t = targets[r]
        g = float32(0.0)
        if t != ignore_index:
            g = float32(math.exp(float32(logits[r, c]) - float32(lse[r])))
            if c == t:
                g -= float32(1.0)
            g *= scale
        grad[r, c] = g


def cross_entropy_forward(logits, targets, ignore_index: int = -100):
    """logits: (N, C) float32/float16, targets: (N,) integers. Returns (loss, lse, count): loss and count float32
    arrays of shape (), lse (N,) float32; backward takes lse and count."""
    logits = contiguous(logits)
    rows = logits.shape[0]
    losses, lse = empty(logits, (rows,), np.float32), empty(logits, (rows,), np.float32)
    loss, count = empty(logits, (1,), np.float32), empty(logits, (1,), np.float32)
    _row_losses[per_row(rows, logits)](logits, targets, ignore_index, losses, lse)
    _mean[one_warp(logits)](losses, targets, ignore_index, loss, count)
    return loss.reshape(()), lse, count.reshape(())


def cross_entropy_backward(logits, targets, lse, count, g_loss, ignore_index: int = -100):
    """d loss / d logits, (N, C) of logits' dtype; g_loss: the upstream gradient, an array of one element."""
    logits = contiguous(logits)
    grad = empty(logits, logits.shape, logits.dtype)
    _backward[per_element(logits.size, logits)](logits, targets, ignore_index, lse, count.reshape(1),
                                                g_loss.reshape(1), grad)
    return grad

