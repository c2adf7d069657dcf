"""Conformer encoder (Gulati et al. 2020) with optional task-specific top blocks.

Block, as ESPnet's ``EncoderLayer`` with ``macaron_style`` and
``normalize_before``::

    x = x + 1/2 FFN(LN(x))            # macaron half-step
    x = x + MHSA_relpos(LN(x))        # Transformer-XL relative positions
    x = x + Conv(LN(x))               # pointwise-GLU-depthwise-norm-Swish-pointwise
    x = x + 1/2 FFN(LN(x))
    x = LN(x)

Methods against negative transfer act here (each alone; see
:class:`~dualasr.model.config.ModelConfig`):

* ``encoder.task_specific_layers = N``: the bottom ``layers - N`` blocks form a
  shared trunk and each output gets its own copy of the top ``N`` blocks.
* ``hierarchy.surface_layer = k``: the surface CTC (and optionally the surface
  decoder) reads block ``k``'s output ``h_k``, the meaning output the top. With
  ``self_condition`` (Nozaki & Komatsu 2021, "Relaxing the conditional
  independence assumption of CTC-based ASR by conditioning on intermediate
  predictions"; ESPnet's ``interctc_use_conditioning``) block ``k + 1`` reads
  ``h_k + Linear(softmax(CTC_surface(h_k)))``. ESPnet applies its final
  ``after_norm`` to ``h_k`` first; these blocks end with their own LayerNorm
  and the encoder has no final one, so the intermediate head reads ``h_k`` as
  the top heads read the top block.
* ``adapters.layers = n``: each output's stream runs the top ``n`` (shared)
  blocks, each followed by that output's :class:`BottleneckAdapter`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .config import AdapterConfig, EncoderConfig, HierarchyConfig
from .layers import FeedForward, RelPositionalEncoding, RelPositionMultiHeadAttention


@dataclass
class EncoderOutput:
    """What the encoder hands to the heads and to the analysis.

    out:    per output name, ``(batch, frames, d_model)`` that output's decoder
            reads; the same tensor for every output unless there are
            task-specific blocks, adapters or a hierarchical surface decoder.
    ctc_in: per output name, ``(batch, frames, d_model)`` that output's CTC
            head reads: ``out[o]``, except the surface output of a hierarchy,
            whose CTC reads block ``k`` (a view of ``h_k`` used by the heads only).
    shared: ``(batch, frames, d_model)`` output of the last block every output
            runs through with the same input (the trunk; the top of the encoder
            for a hierarchy, where it is the meaning output's input).
    shared_features: every tensor through which the losses reach the shared
            encoder parameters, each ``(batch, frames, d_model)``: ``[shared]``,
            or ``[h_k, top]`` for a hierarchy: the ``features`` for
            ``torchjd.autojac.mtl_backward``. They form a cut of the graph (no
            path from a shared parameter to a loss passes through two of them),
            since the heads read ``h_k`` through their own view of it.
    lens:   ``(batch,)`` valid frames.
    mask:   ``(batch, frames)`` bool, True on valid frames.
    layers: per output name, the outputs of the blocks of the stack that ends
            at ``ctc_in[o]`` (trunk blocks are the same tensors in every list;
            a hierarchy's surface list stops at block ``k``); None unless asked.
    """

    out: dict[str, Tensor]
    ctc_in: dict[str, Tensor]
    shared: Tensor
    shared_features: list[Tensor]
    lens: Tensor
    mask: Tensor
    layers: dict[str, list[Tensor]] | None = None


class BottleneckAdapter(nn.Module):
    """Bottleneck adapter (Houlsby et al. 2019, "Parameter-efficient transfer
    learning for NLP"): ``x + W_up GELU(W_down x)``, ``(batch, frames, d)`` ->
    ``(batch, frames, d)``, ``W_down`` ``d -> dim``, ``W_up`` ``dim -> d``.

    ``W_up`` and its bias start at zero, so the adapter starts as the identity
    and training starts from the plain model. One adapter after each block
    (the single-adapter placement of Pfeiffer et al. 2021, "AdapterFusion")
    rather than Houlsby's two per layer keeps :class:`ConformerBlock` unchanged.
    Not peft's LoRA: peft wraps ``nn.Linear`` layers by name with one active
    adapter per forward, and a DO forward needs both outputs' adapters at once.
    """

    def __init__(self, d_model: int, dim: int):
        super().__init__()
        self.down = nn.Linear(d_model, dim)
        self.act = nn.GELU()
        self.up = nn.Linear(dim, d_model)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.up(self.act(self.down(x)))


class ConvolutionModule(nn.Module):
    """Pointwise conv (d -> 2d) + GLU, depthwise conv, BatchNorm (or LayerNorm),
    Swish, pointwise conv. Padded frames are zeroed before the depthwise conv so
    they cannot leak into valid frames at utterance ends."""

    def __init__(self, d_model: int, kernel: int, norm: str):
        super().__init__()
        self.pointwise1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.norm = nn.BatchNorm1d(d_model) if norm == "batch" else nn.LayerNorm(d_model)
        self.act = nn.SiLU()
        self.pointwise2 = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` ``(batch, T, d)``, ``mask`` ``(batch, T)`` -> ``(batch, T, d)``."""
        x = nn.functional.glu(self.pointwise1(x.transpose(1, 2)), dim=1)
        x = self.depthwise(x.masked_fill(~mask[:, None, :], 0.0))
        if isinstance(self.norm, nn.LayerNorm):
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.norm(x)
        return self.pointwise2(self.act(x)).transpose(1, 2)


class ConformerBlock(nn.Module):
    def __init__(self, d_model: int, cfg: EncoderConfig):
        super().__init__()
        self.ff_macaron = FeedForward(d_model, cfg.ffn_dim, cfg.dropout, nn.SiLU())
        self.attn = RelPositionMultiHeadAttention(d_model, cfg.heads, cfg.attn_dropout)
        self.conv = ConvolutionModule(d_model, cfg.kernel, cfg.conv_norm)
        self.ff = FeedForward(d_model, cfg.ffn_dim, cfg.dropout, nn.SiLU())
        self.norm_ff_macaron = nn.LayerNorm(d_model)
        self.norm_attn = nn.LayerNorm(d_model)
        self.norm_conv = nn.LayerNorm(d_model)
        self.norm_ff = nn.LayerNorm(d_model)
        self.norm_final = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Tensor) -> Tensor:
        """``x`` ``(batch, T, d)``, ``pos_emb`` ``(1, 2T-1, d)``, ``mask`` ``(batch, T)``."""
        x = x + 0.5 * self.dropout(self.ff_macaron(self.norm_ff_macaron(x)))
        x = x + self.dropout(self.attn(self.norm_attn(x), pos_emb, mask))
        x = x + self.dropout(self.conv(self.norm_conv(x), mask))
        x = x + 0.5 * self.dropout(self.ff(self.norm_ff(x)))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    """Subsampled frames ``(batch, T, d_model)`` -> :class:`EncoderOutput`.

    ``outputs`` names the per-output streams (they differ only with
    task-specific blocks or adapters). ``hierarchy`` and ``adapters`` are the
    model config's sections (validated there); ``condition_vocab`` is the
    surface vocabulary size, needed by the self-conditioning projection.
    """

    def __init__(
        self,
        d_model: int,
        cfg: EncoderConfig,
        outputs: tuple[str, ...],
        hierarchy: HierarchyConfig | None = None,
        adapters: AdapterConfig | None = None,
        condition_vocab: int | None = None,
    ):
        super().__init__()
        self.outputs = outputs
        self.pos_enc = RelPositionalEncoding(d_model, cfg.dropout)
        n_shared = cfg.layers - cfg.task_specific_layers
        self.blocks = nn.ModuleList(ConformerBlock(d_model, cfg) for _ in range(n_shared))
        self.branches = nn.ModuleDict(
            {
                o: nn.ModuleList(
                    ConformerBlock(d_model, cfg) for _ in range(cfg.task_specific_layers)
                )
                for o in (outputs if cfg.task_specific_layers else ())
            }
        )
        n_adapted = adapters.layers if adapters else 0
        self.adapters = nn.ModuleDict(
            {o: nn.ModuleList(BottleneckAdapter(d_model, adapters.dim) for _ in range(n_adapted)) for o in outputs}
            if n_adapted
            else {}
        )
        self.n_common = n_shared - n_adapted  # blocks every output runs on the same input
        self.surface_layer = hierarchy.surface_layer if hierarchy else None
        self.surface_decoder = bool(hierarchy and hierarchy.surface_decoder)
        self.conditioning = None
        if hierarchy and hierarchy.self_condition:
            if condition_vocab is None:
                raise ValueError("hierarchy.self_condition needs the surface vocabulary size")
            self.conditioning = nn.Linear(condition_vocab, d_model)

    def forward(
        self, x: Tensor, lens: Tensor, mask: Tensor, return_layers: bool = False, ctc: nn.Module | None = None
    ) -> EncoderOutput:
        """``x`` ``(batch, T, d_model)``, ``lens`` ``(batch,)``, ``mask`` ``(batch, T)``.
        ``ctc``: the surface CTC head (``log_probs``), needed with self-conditioning."""
        if self.conditioning is not None and ctc is None:
            raise ValueError("self-conditioning needs the surface CTC head: pass ctc=")
        x, pos_emb = self.pos_enc(x)
        trunk: list[Tensor] = []
        tap = None
        for i, block in enumerate(self.blocks[: self.n_common]):
            x = block(x, pos_emb, mask)
            trunk.append(x)
            if i + 1 == self.surface_layer:
                # The heads read their own view of h_k: autograd.grad w.r.t. it
                # then holds only the heads' path, not the one through the upper
                # blocks (see EncoderOutput.shared_features).
                tap = x.view_as(x)
                if self.conditioning is not None:
                    posteriors = ctc.log_probs(x).exp().to(x.dtype)  # (batch, T, vocab)
                    x = x + self.conditioning(posteriors)
        shared = x
        out, layers = {}, {}
        for o in self.outputs:
            y, stack = shared, list(trunk)
            for j, block in enumerate(self.blocks[self.n_common :]):
                y = self.adapters[o][j](block(y, pos_emb, mask))
                stack.append(y)
            for block in self.branches[o] if o in self.branches else ():
                y = block(y, pos_emb, mask)
                stack.append(y)
            out[o], layers[o] = y, stack
        ctc_in = dict(out)
        features = [shared]
        if tap is not None:
            ctc_in["surface"] = tap
            layers["surface"] = trunk[: self.surface_layer]
            if self.surface_decoder:
                out["surface"] = tap
            features = [tap, shared]
        return EncoderOutput(out, ctc_in, shared, features, lens, mask, layers if return_layers else None)
