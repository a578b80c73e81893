"""Attention kernels as functions of tensors: scores → softmax → weighted sum.

The fast paths hold no N×N matrix, with ``mask_self`` too (one exception: on CPU, up to 8,192
positions, heads wider than 128 take the explicit path, which is faster
there); the explicit paths build it and hand the weights back (for
diagnostics and pictures). Both share the masking rule: ``mask_self`` removes
a position's own key unless it is the only key.

On CPU, the fast criss-cross path and the dense CPU exception run the same
math through ``autograd.Function`` s with a hand-written backward
(:mod:`.autograd_kernels`); the weight-returning paths stay plain autograd,
the reference that the tests hold them to.

While a tracer runs the layers (ONNX export, ``torch.export``,
``torch.compile``, ``torch.jit.trace``; :func:`traceable` is the one place
that tells), no Function runs: they fill ``diagonal()`` in place and keep
state on ``ctx``, which neither exports nor traces into one graph. There the
kernels take plain tensor ops with the same math: the explicit path, or
``scaled_dot_product_attention`` where eager uses it too. With ``mask_self``
that explicit path builds the N×N masked logits (what the chunked Function
avoids); export and compile accept that for their sizes. In eager nothing
changes: the same calls, bit for bit. :func:`tracer_paths` runs the tracers'
paths in eager (tests hold them to the Functions; benchmarks time them), and
:func:`paths_taken` names the paths a forward took.
"""
from contextlib import contextmanager, nullcontext
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .autograd_kernels import (CrissCrossFunction, DenseAttentionFunction,
                               SelfMaskedAttentionFunction, distinct)
from .options import check_dropout

# CPU dispatch (tools/benchmark_layers.py): up to this many positions, heads
# wider than this run faster on the explicit path. Measured on 2 cores, fp32,
# B=2, C=256: at 64×64 explicit 0.76–0.98× of mmcv's time against 1.09× fused;
# at 97×97 (9,409) both alike in time and the fused path needs 1/5 the memory.
CPU_EXPLICIT_MAX_POSITIONS = 8192
CPU_FUSED_MAX_HEAD_DIM = 128

# Path names (paths_taken): the fused kernel, the plain matmul → softmax →
# matmul (with or without the N×N self mask), the criss-cross einsums, and
# the hand-written Functions by their class names.
FUSED, EXPLICIT, CRISS_CROSS_EXPLICIT = ('fused SDPA', 'explicit',
                                         'explicit criss-cross')
# Whether tracer_paths() is active (a list, so that the flag is one object).
_TRACER_PATHS = [False]
# Lists the kernels append their path names to (paths_taken), innermost last.
_LISTENERS: List[List[str]] = []


def traceable() -> bool:
    """Whether a tracer is running the layers, so that the kernels must take
    their plain tensor ops (the one switch between the paths).

    True under ``torch.compile`` (Dynamo folds the check into the graph as a
    constant), ``torch.export`` (and the ``dynamo=True`` ONNX exporter built
    on it), the TorchScript ONNX exporter and ``torch.jit.trace`` (FLOP
    counting), and inside :func:`tracer_paths`; False in eager.
    """
    if torch.compiler.is_compiling() or _TRACER_PATHS[0]:
        return True
    is_exporting = getattr(torch.compiler, 'is_exporting', None)  # torch 2.5+
    return ((is_exporting is not None and is_exporting())
            or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing())


@contextmanager
def tracer_paths() -> Iterator[None]:
    """Run the paths a tracer takes, in eager: what an exported or compiled
    graph computes, for tests (against the Functions) and benchmarks."""
    saved = _TRACER_PATHS[0]
    _TRACER_PATHS[0] = True
    try:
        yield
    finally:
        _TRACER_PATHS[0] = saved


@contextmanager
def paths_taken() -> Iterator[List[str]]:
    """Yield a list that collects the name of each kernel path taken inside
    (eager calls; a compiled graph appends nothing)."""
    taken: List[str] = []
    _LISTENERS.append(taken)
    try:
        yield taken
    finally:
        _LISTENERS.remove(taken)


def _took(path: str) -> None:
    """Tell the innermost :func:`paths_taken` that ``path`` ran."""
    if not torch.compiler.is_compiling() and _LISTENERS:
        _LISTENERS[-1].append(path)


def _float32_scores(device_type: str):
    """Disable autocast so that logits are formed in at least fp32."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return nullcontext()


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts to on ``device_type``, None when it is off."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def _explicit_is_faster(q: Tensor, v: Tensor, any_size: bool = False) -> bool:
    """On CPU, maps up to 8,192 positions with wide heads (the identity
    modes: head size = in_channels) run faster as matmul → softmax → matmul
    than through the fused kernel; the N×N matrix stays moderate there.
    ``any_size``: leave the positions out (tracers: a test of the map size
    would fix the height and width that export keeps dynamic)."""
    return (q.device.type == 'cpu'
            and (any_size or q.shape[-2] <= CPU_EXPLICIT_MAX_POSITIONS)
            and max(q.shape[-1], v.shape[-1]) > CPU_FUSED_MAX_HEAD_DIM)


def at_least_fp32(t: Tensor) -> Tensor:
    """``t`` in float32, unless it is float32 or float64 already."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _dense_function(q: Tensor, k: Tensor, v: Tensor, scale: float,
                    mask_self: bool) -> Tensor:
    """The explicit path's math with a hand-written backward (no weights)."""
    with _float32_scores(q.device.type):
        # [B, heads, N, C] -> [B·heads, N, C], aliases kept (Q = K saves work)
        q3, k3, v3 = distinct(
            q, k, v, fn=lambda t: at_least_fp32(t).flatten(0, -3))
        out = DenseAttentionFunction.apply(q3.to(k3.dtype), k3,
                                           v3.to(k3.dtype), scale, mask_self)
    # [B·heads, N, Cv] -> [B, heads, N, Cv]: one row per query (N of Q;
    # reduced keys, SegFormer's, make M of K and V smaller)
    return out.view(*q.shape[:-1], out.shape[-1]).to(v.dtype)


def _self_masked_function(q: Tensor, k: Tensor, v: Tensor, scale: float,
                          dropout_p: float = 0.0) -> Tensor:
    """The fast path with ``mask_self``: fused kernels take no diagonal
    mask without an N×N one, so this runs query chunks with a hand-written
    backward (:class:`SelfMaskedAttentionFunction`; with dropout, its
    factors come from a seed drawn here from the default CPU generator,
    so that ``torch.manual_seed`` fixes them)."""
    with _float32_scores(q.device.type):
        # [B, heads, N, C] -> [B·heads, N, C], aliases kept
        q3, k3, v3 = distinct(
            q, k, v, fn=lambda t: at_least_fp32(t).flatten(0, -3).contiguous())
        # (dropout_p, seed), passed only when set
        dropout = ((dropout_p, int(torch.randint(2**62, ())))
                   if dropout_p else ())
        out = SelfMaskedAttentionFunction.apply(q3.to(k3.dtype), k3,
                                                v3.to(k3.dtype), scale,
                                                *dropout)
    return out.view(*v.shape[:-1], out.shape[-1]).to(v.dtype)


def dense_attention(q: Tensor,
                    k: Tensor,
                    v: Tensor,
                    scale: float,
                    mask_self: bool = False,
                    need_weights: bool = False,
                    dropout_p: float = 0.0
                    ) -> Tuple[Tensor, Optional[Tensor]]:
    """Attention of every query over every key (non-local, token attention).

    Args:
        q, k: [B, heads, N, C] queries and [B, heads, M, C] keys.
        v: [B, heads, M, Cv] values.
        scale: Logit multiplier.
        mask_self: Exclude each position's own key (needs M == N; kept when
            N == 1).
        need_weights: Use the explicit path and return the weights.
        dropout_p: Dropout on the weights; as with
            ``F.scaled_dot_product_attention``, the caller passes 0 outside
            training. The weights returned are those before dropout. With
            ``mask_self`` the fast path drops inside its query chunks (no
            N×N mask); without, the fused kernel drops; the CPU shortcut for
            wide heads is skipped.

    Returns:
        ``(out, weights)``: out is [B, heads, N, Cv]; weights is
        [B, heads, N, M] on the explicit path, else None.
    """
    n = q.shape[-2]
    mask_self = mask_self and n > 1
    dropout_p = check_dropout('dropout_p', dropout_p)
    tracing = traceable()
    if not (need_weights or dropout_p) and _explicit_is_faster(q, v, tracing):
        if tracing:  # plain ops: the explicit path, weights dropped
            out, _ = dense_attention(q, k, v, scale, mask_self, True)
            return out, None
        _took(DenseAttentionFunction.__name__)
        return _dense_function(q, k, v, scale, mask_self), None
    if need_weights or (mask_self and tracing):
        # (tracers with mask_self: the N×N masked logits, no Function)
        _took(EXPLICIT)
        with _float32_scores(q.device.type):
            # Scale Q (N·C) rather than the logits (N·N). [B, heads, N, N]
            q32 = at_least_fp32(q)
            logits = torch.matmul(q32 * scale if scale != 1.0 else q32,
                                  at_least_fp32(k).transpose(-1, -2))
            if mask_self:
                eye = torch.eye(n, dtype=torch.bool, device=q.device)
                logits = logits.masked_fill(eye, float('-inf'))
            weights = logits.softmax(dim=-1)
        attn = F.dropout(weights, dropout_p) if dropout_p else weights
        return (torch.matmul(attn.to(v.dtype), v),
                weights if need_weights else None)
    if mask_self:
        _took(SelfMaskedAttentionFunction.__name__)
        return _self_masked_function(q, k, v, scale, dropout_p), None
    _took(FUSED)
    out_channels = v.shape[-1]
    # passed only when set: without dropout the call stays as it was
    dropout = dict(dropout_p=dropout_p) if dropout_p else {}
    # Fused kernels need the head dimension contiguous, or SDPA silently
    # falls back to its N×N math kernel.
    q, k, v = (t.contiguous() for t in (q, k, v))
    if q.shape[-1] != out_channels:
        # Fused kernels need one head size for Q, K and V: zero channels
        # change no logit (on Q and K) and add output columns we drop (on V).
        width = max(q.shape[-1], out_channels)
        q, k, v = (F.pad(t, (0, width - t.shape[-1])) for t in (q, k, v))
    if q.device.type == 'cpu' and torch.float16 in (q.dtype,
                                                    _autocast_dtype('cpu')):
        # CPU kernels before torch 2.5 form fp16 logits, which overflow on
        # large activations; fp16 brings no speed on a CPU anyway.
        with _float32_scores('cpu'):
            out = F.scaled_dot_product_attention(q.float(), k.float(),
                                                 v.float(), scale=scale,
                                                 **dropout)
        return out[..., :out_channels].to(v.dtype), None
    out = F.scaled_dot_product_attention(q, k, v, scale=scale, **dropout)
    return out[..., :out_channels], None


def criss_cross_attention(q: Tensor,
                          k: Tensor,
                          v: Tensor,
                          scale: float,
                          mask_self: bool = False,
                          need_weights: bool = False
                          ) -> Tuple[Tensor, Optional[Tensor]]:
    """Attention of each position over its row and column (CCNet).

    The own position lies in both the row and the column; it is counted once
    (in the row), as mmcv's ``CrissCrossAttention`` does. On CPU without
    weights this runs :class:`CrissCrossFunction` (same math, hand-written
    backward, no concatenated logits), except under a tracer
    (:func:`traceable`).

    Args:
        q, k: [B, C, H, W] queries and keys.
        v: [B, Cv, H, W] values.
        scale: Logit multiplier.
        mask_self: Exclude each position's own key (kept on a 1×1 map).
        need_weights: Also return the weights.

    Returns:
        ``(out, weights)``: out is [B, Cv, H, W]; weights is [B, H, W, H + W]
        (first H: keys (i, w) of the column, whose own entry i == h is always
        0; last W: keys (h, j) of the row), or None.
    """
    height, width = q.shape[-2:]
    mask_self = mask_self and height * width > 1
    # Tracers (export, compile, FLOP counting) need the plain ops below.
    if not (need_weights or traceable()) and q.device.type == 'cpu':
        _took(CrissCrossFunction.__name__)
        with _float32_scores('cpu'):
            q32, k32, v32 = distinct(q, k, v, fn=at_least_fp32)
            out = CrissCrossFunction.apply(q32, k32, v32.to(k32.dtype),
                                           scale, mask_self)
        return out.to(v.dtype), None
    _took(CRISS_CROSS_EXPLICIT)
    with _float32_scores(q.device.type):
        q32, k32 = at_least_fp32(q), at_least_fp32(k)
        # [B, H, W, H]: query (h, w) against column key (i, w)
        logits_col = torch.einsum('bchw,bciw->bhwi', q32, k32)
        # [B, H, W, W]: query (h, w) against row key (h, j)
        logits_row = torch.einsum('bchw,bchj->bhwj', q32, k32)
        if scale != 1.0:
            logits_col = logits_col * scale
            logits_row = logits_row * scale
        own_in_col = torch.eye(height, dtype=torch.bool, device=q.device)
        logits_col = logits_col.masked_fill(own_in_col[:, None, :],
                                            float('-inf'))
        if mask_self:
            own_in_row = torch.eye(width, dtype=torch.bool, device=q.device)
            logits_row = logits_row.masked_fill(own_in_row, float('-inf'))
        # [B, H, W, H + W]
        weights = torch.cat([logits_col, logits_row], dim=-1).softmax(dim=-1)
    attn = weights.to(v.dtype)
    out = torch.einsum('bciw,bhwi->bchw', v, attn[..., :height])
    out = out + torch.einsum('bchj,bhwj->bchw', v, attn[..., height:])
    return out, (weights if need_weights else None)
