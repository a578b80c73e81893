"""Attention kernels with a hand-written backward (the CPU fast paths, and
``mask_self`` on every device).

Plain autograd through ``matmul → softmax → matmul`` keeps extra copies of
the logits and of permuted inputs and makes new buffers at every step. These
``autograd.Function`` s keep only Q, K, V and the weights, run every product
as one ``bmm`` on a layout that needs no copy, update buffers in place, and
use the softmax gradient ``dL = W ⊙ (dW − rowsum(dW ⊙ W))``; the dense
backward works in query chunks, so it holds one N×N matrix (the saved
weights), not three. The math is the plain path's; tests check both against
each other and with ``gradcheck``.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_NEG_INF = float('-inf')


def _channels_last(t: Tensor) -> Tensor:
    """[B, C, H, W] -> contiguous [B, H, W, C] (a view if it already is)."""
    return t.permute(0, 2, 3, 1).contiguous()


def _rows(t: Tensor) -> Tensor:
    """[B, H, W, X] -> [B·H, W, X]: one matrix per image row."""
    return t.flatten(0, 1)


def _to_nchw(t: Optional[Tensor]) -> Optional[Tensor]:
    """[B, H, W, C] -> a [B, C, H, W] view (None stays None)."""
    return None if t is None else t.permute(0, 3, 1, 2)


def distinct(*tensors: Tensor, fn) -> Tuple[Tensor, ...]:
    """Apply ``fn`` once per distinct tensor, so that aliases stay aliases."""
    done: Dict[int, Tensor] = {}
    for t in tensors:
        if id(t) not in done:
            done[id(t)] = fn(t)
    return tuple(done[id(t)] for t in tensors)


def _scaled_bmm(a: Tensor, b: Tensor, scale: float,
                out: Optional[Tensor] = None) -> Tensor:
    """``scale · a @ b`` (into ``out`` if given, overwriting it)."""
    if out is None:
        out = a.new_empty(a.shape[0], a.shape[1], b.shape[2])
    return out.baddbmm_(a, b, beta=0, alpha=scale)


# Queries per backward chunk of the dense Function: its backward holds the
# N×N weights (overwritten by the logit gradient) plus one chunk × N block
# of weight gradients of one image.
BACKWARD_QUERY_CHUNK = 1024
# Block edge of the in-place ``L + Lᵀ`` of the dense backward.
SYMMETRIZE_BLOCK = 256


def _add_transpose_(m: Tensor, block: int = SYMMETRIZE_BLOCK) -> Tensor:
    """``m + mᵀ`` in place for square [batch, N, N] ``m``, block by block
    (holds one block × block temporary)."""
    n = m.shape[-1]
    for i in range(0, n, block):
        for j in range(i, n, block):
            upper = m[:, i:i + block, j:j + block]
            lower = m[:, j:j + block, i:i + block]
            total = upper + lower.transpose(1, 2)
            upper.copy_(total)
            lower.copy_(total.transpose(1, 2))
    return m


def _dense_weights(q: Tensor, k: Tensor, scale: float,
                   mask_self: bool) -> Tensor:
    """softmax(scale · q kᵀ) [batch, N, N], softmax in place."""
    weights = _scaled_bmm(q, k.transpose(1, 2), scale)
    if mask_self:
        weights.diagonal(dim1=1, dim2=2).fill_(_NEG_INF)
    return torch.ops.aten._softmax.out(weights, -1, False, out=weights)


class DenseAttentionFunction(torch.autograd.Function):
    """``softmax(scale · q kᵀ) v`` over all keys; saves the N×N weights.

    Softmax and its backward run in place (the fused kernels work row by
    row, reading each element before writing it). The backward computes
    dV from the weights, then overwrites them, chunk of queries by chunk,
    with the logit gradient dL; when Q and K are one tensor, their gradient
    is one product with ``dL + dLᵀ``. A second backward through the same
    graph (``retain_graph=True``) recomputes the weights from Q and K.

    Only for the documented CPU exception (wide heads). Inputs are
    [batch, N, C] (any batch-compatible strides); Q, K, V may alias.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, scale: float,
                mask_self: bool) -> Tensor:
        weights = _dense_weights(q, k, scale, mask_self)
        ctx.scale, ctx.mask_self = scale, mask_self
        ctx.shared = (q is k, q is k and v is q)
        ctx.save_for_backward(q, k, v)
        # An intermediate, kept on ctx: the backward overwrites it
        ctx.weights = weights
        return torch.bmm(weights, v)  # [batch, N, Cv]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: Tensor):
        q, k, v = ctx.saved_tensors
        qk_shared, v_is_q = ctx.shared
        scale = ctx.scale
        weights = ctx.weights
        if weights is None:  # a second backward (retain_graph): recompute
            weights = _dense_weights(q, k, scale, ctx.mask_self)
        ctx.weights = None
        batch, n, _ = weights.shape
        d_v = torch.bmm(weights.transpose(1, 2), d_out)  # [batch, N, Cv]
        # dW of one image's chunk of queries, [chunk, N], reused
        d_weights = weights.new_empty(min(n, BACKWARD_QUERY_CHUNK), n)
        for b in range(batch):
            for start in range(0, n, BACKWARD_QUERY_CHUNK):
                rows = slice(start, start + BACKWARD_QUERY_CHUNK)
                w_rows = weights[b, rows]  # contiguous, as in-place needs
                d_w = d_weights[:w_rows.shape[0]]
                torch.mm(d_out[b, rows], v[b].t(), out=d_w)
                # dL = W ⊙ (dW − rowsum(dW ⊙ W)), over these weights
                torch.ops.aten._softmax_backward_data.out(
                    d_w, w_rows, -1, weights.dtype, grad_input=w_rows)
        del d_weights
        d_logits = weights  # [batch, N, N], now dL
        if qk_shared:  # one tensor served as Q and K: (dL + dLᵀ) q
            d_q = _scaled_bmm(_add_transpose_(d_logits), k, scale)
            if v_is_q:
                return d_q.add_(d_v), None, None, None, None
            return d_q, None, d_v, None, None
        d_q = _scaled_bmm(d_logits, k, scale)
        d_k = _scaled_bmm(d_logits.transpose(1, 2), q, scale)
        return d_q, d_k, d_v, None, None


class CrissCrossFunction(torch.autograd.Function):
    """Joint softmax over each position's column and row (CCNet).

    Inputs q, k: [B, C, H, W], v: [B, Cv, H, W], one float dtype; they may
    alias. Works on channels-last copies [B, H, W, C]: a row is then a
    contiguous [W, C] matrix and a column a strided [H, C] one, so every
    product is a ``bmm`` without copies. Returns out [B, Cv, H, W] (a
    channels-last view). Saved weights: rows [B, H, W, W] and cols
    [B, W, H, H] (cols[b, w, h, i]: query (h, w), key (i, w)).
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, scale: float,
                mask_self: bool):
        batch, _, height, width = q.shape
        q_l, k_l, v_l = distinct(q, k, v, fn=_channels_last)
        # rows [B·H, W, W]: query (h, w) against key (h, j)
        rows = _scaled_bmm(_rows(q_l), _rows(k_l).transpose(1, 2), scale)
        rows = rows.view(batch, height, width, width)
        # cols [B, W, H, H]: query (h, w) against key (i, w)
        cols = q_l.new_empty(batch, width, height, height)
        for b in range(batch):
            _scaled_bmm(q_l[b].transpose(0, 1), k_l[b].permute(1, 2, 0),
                        scale, out=cols[b])
        # The own key is counted once, in the row.
        cols.diagonal(dim1=-2, dim2=-1).fill_(_NEG_INF)
        if mask_self:
            rows.diagonal(dim1=-2, dim2=-1).fill_(_NEG_INF)
        # Softmax over the H + W keys, without concatenating them. [B, H, W]
        top = torch.maximum(rows.amax(-1), cols.amax(-1).transpose(1, 2))
        rows.sub_(top[..., None]).exp_()
        cols.sub_(top.transpose(1, 2)[..., None]).exp_()
        total = rows.sum(-1) + cols.sum(-1).transpose(1, 2)
        rows.div_(total[..., None])
        cols.div_(total.transpose(1, 2)[..., None])
        # out [B, H, W, Cv]: row part in one bmm, column part per image
        out = torch.bmm(_rows(rows), _rows(v_l))
        out = out.view(batch, height, width, v_l.shape[-1])
        for b in range(batch):
            # [W, H, Cv] into a fresh buffer, then added: a product into
            # the strided view would run one small GEMM per column
            out[b].transpose(0, 1).add_(
                torch.bmm(cols[b], v_l[b].transpose(0, 1)))
        ctx.scale = scale
        ctx.shared = (q is k, q is k and v is q)
        ctx.save_for_backward(q_l, k_l, v_l, rows, cols)
        return out.permute(0, 3, 1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: Tensor):
        q_l, k_l, v_l, rows, cols = ctx.saved_tensors
        qk_shared, v_is_q = ctx.shared
        scale = ctx.scale
        batch = q_l.shape[0]
        do_l = _channels_last(d_out)  # [B, H, W, Cv]
        # dW for both key sets, then dL = W ⊙ (dW − Σ_{row+col} dW ⊙ W)
        d_rows = torch.bmm(_rows(do_l), _rows(v_l).transpose(1, 2))
        d_rows = d_rows.view_as(rows).mul_(rows)
        d_cols = torch.empty_like(cols)
        for b in range(batch):
            torch.bmm(do_l[b].transpose(0, 1), v_l[b].permute(1, 2, 0),
                      out=d_cols[b])
        d_cols.mul_(cols)
        rowsum = d_rows.sum(-1) + d_cols.sum(-1).transpose(1, 2)  # [B, H, W]
        d_rows.addcmul_(rows, rowsum[..., None], value=-1)
        d_cols.addcmul_(cols, rowsum.transpose(1, 2)[..., None], value=-1)
        # dV = Wᵀ dO, per key set
        d_v = torch.bmm(_rows(rows).transpose(1, 2), _rows(do_l))
        d_v = d_v.view_as(v_l)
        for b in range(batch):
            d_v[b].transpose(0, 1).add_(
                torch.bmm(cols[b].transpose(1, 2), do_l[b].transpose(0, 1)))
        if qk_shared:
            # q = k: one product with dL + dLᵀ per key set
            d_rows = d_rows + d_rows.transpose(-1, -2)
            d_cols = d_cols + d_cols.transpose(-1, -2)
        d_q = _scaled_bmm(_rows(d_rows), _rows(k_l), scale).view_as(q_l)
        for b in range(batch):
            d_q[b].transpose(0, 1).add_(
                torch.bmm(d_cols[b], k_l[b].transpose(0, 1)), alpha=scale)
        d_k = None
        if not qk_shared:
            d_k = _scaled_bmm(_rows(d_rows).transpose(1, 2), _rows(q_l),
                              scale).view_as(k_l)
            for b in range(batch):
                d_k[b].transpose(0, 1).add_(
                    torch.bmm(d_cols[b].transpose(1, 2),
                              q_l[b].transpose(0, 1)),
                    alpha=scale)
        if v_is_q:
            return _to_nchw(d_q.add_(d_v)), None, None, None, None
        return _to_nchw(d_q), _to_nchw(d_k), _to_nchw(d_v), None, None


# Elements of one [batch, chunk, N] block of logits in the masked kernel: the
# query chunk is sized so that a block stays near 8 MiB in fp32, whatever N.
MASKED_BLOCK_ELEMENTS = 2**21


def masked_query_chunk(batch: int, n: int,
                       block: Optional[int] = None) -> int:
    """Queries per chunk of :class:`SelfMaskedAttentionFunction` (``block``
    None: :data:`MASKED_BLOCK_ELEMENTS`, read at the call, so that tests
    can make chunks small)."""
    if block is None:
        block = MASKED_BLOCK_ELEMENTS
    return max(1, min(n, block // max(1, batch * n)))


def _leading(block: Tensor, size: int) -> Tensor:
    """A contiguous [batch, size, N] view of the start of a [batch, chunk,
    N] buffer. ``block[:, :size]`` of a last, shorter chunk is strided
    across the batch, and the in-place softmax (and its backward) through
    ``out=`` then writes only part of it."""
    batch, chunk, n = block.shape
    if size == chunk:
        return block
    return block.view(-1)[:batch * size * n].view(batch, size, n)


def _keep_scaled(like: Tensor, dropout_p: float,
                 generator: torch.Generator) -> Tensor:
    """Dropout's factor of one block: 1 / (1 − p) where kept, 0 where
    dropped (the next draws of ``generator``)."""
    keep = torch.empty_like(like).bernoulli_(1 - dropout_p,
                                             generator=generator)
    return keep.div_(1 - dropout_p)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _masked_weights(q_rows: Tensor, k: Tensor, scale: float, start: int,
                    out: Tensor) -> Tensor:
    """softmax over keys of ``scale · q_rows kᵀ`` [batch, chunk, N] into
    ``out``, with each query's own key (column ``start + row``) removed;
    softmax in place."""
    _scaled_bmm(q_rows, k.transpose(1, 2), scale, out=out)
    out[:, :, start:start + out.shape[1]].diagonal(
        dim1=1, dim2=2).fill_(_NEG_INF)
    return torch.ops.aten._softmax.out(out, -1, False, out=out)


class SelfMaskedAttentionFunction(torch.autograd.Function):
    """``softmax(scale · q kᵀ) v`` without each query's own key, in query
    chunks: no N×N matrix in the forward or the backward.

    Fused kernels take no diagonal mask without an N×N one. Here the
    forward keeps only Q, K, V; the backward recomputes one chunk of
    weights at a time and runs softmax and its gradient in place, as
    :class:`DenseAttentionFunction` does. Two [batch, chunk, N] blocks are
    live at any moment (see :data:`MASKED_BLOCK_ELEMENTS`). Inputs are
    [batch, N, C] ([batch, N, Cv] for v) in one float dtype, N > 1; Q, K,
    V may alias.

    With ``dropout_p`` > 0 (token attention's ``attn_drop``), the weights
    of each chunk are multiplied by a dropout factor drawn from a generator
    seeded with ``seed``; the backward draws the same factors again, chunk
    by chunk in the same order, so no mask is kept (one more block is live
    in the forward, two more in the backward).
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, scale: float,
                dropout_p: float = 0.0, seed: int = 0) -> Tensor:
        batch, n, _ = q.shape
        chunk = masked_query_chunk(batch, n)
        out = v.new_empty(batch, n, v.shape[-1])
        block = q.new_empty(batch, chunk, n)
        generator = _generator(q.device, seed) if dropout_p else None
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            size = q[:, rows].shape[1]
            weights = _masked_weights(q[:, rows], k, scale, start,
                                      _leading(block, size))
            if generator is not None:
                weights.mul_(_keep_scaled(weights, dropout_p, generator))
            out[:, rows] = torch.bmm(weights, v)
        ctx.scale, ctx.chunk = scale, chunk
        ctx.dropout_p, ctx.seed = dropout_p, seed
        ctx.shared = (q is k, v is q, v is k)
        ctx.save_for_backward(q, k, v)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: Tensor):
        q, k, v = ctx.saved_tensors
        scale, chunk = ctx.scale, ctx.chunk
        batch, n, _ = q.shape
        d_q, d_k, d_v = (torch.zeros_like(t) for t in (q, k, v))
        block = q.new_empty(batch, chunk, n)
        d_block = q.new_empty(batch, chunk, n)
        generator = (_generator(q.device, ctx.seed) if ctx.dropout_p
                     else None)
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            q_rows, do_rows = q[:, rows], d_out[:, rows]
            size = q_rows.shape[1]
            weights = _masked_weights(q_rows, k, scale, start,
                                      _leading(block, size))
            keep = None
            if generator is not None:  # the forward's factors, drawn again
                keep = _keep_scaled(weights, ctx.dropout_p, generator)
            d_v.baddbmm_(weights.transpose(1, 2) if keep is None else
                         (weights * keep).transpose(1, 2), do_rows)
            # dW = dO vᵀ (⊙ the dropout factor), then
            # dL = W ⊙ (dW − rowsum(dW ⊙ W)) in place
            d_logits = _leading(d_block, size).baddbmm_(
                do_rows, v.transpose(1, 2), beta=0)
            if keep is not None:
                d_logits.mul_(keep)
            torch.ops.aten._softmax_backward_data.out(
                d_logits, weights, -1, weights.dtype, grad_input=d_logits)
            d_q[:, rows] = torch.bmm(d_logits, k).mul_(scale)
            d_k.baddbmm_(d_logits.transpose(1, 2), q_rows, alpha=scale)
        qk_shared, v_is_q, v_is_k = ctx.shared
        # (scale, dropout_p, seed) get no gradient
        if qk_shared:
            d_q.add_(d_k)
            d_k = None
            if v_is_q:
                return d_q.add_(d_v), None, None, None, None, None
        elif v_is_k:
            return d_q, d_k.add_(d_v), None, None, None, None
        elif v_is_q:
            return d_q.add_(d_v), d_k, None, None, None, None
        return d_q, d_k, d_v, None, None, None
