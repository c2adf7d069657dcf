"""Front end: global CMVN, SpecAugment and Conv2d subsampling (x4).

Input is the ``(batch, frames, n_mels)`` log-mel fbank written by the features
stage; output is ``(batch, frames', d_model)`` at a 40 ms frame rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lhotse.features.kaldi.layers import lin2mel, mel2lin
from torch import Tensor, nn

from dualasr.data.features import mel_centres

from .config import SpecAugConfig
from .layers import lengths_to_mask


class GlobalCMVN(nn.Module):
    """``(x - mean) / std`` with training-set statistics kept as buffers, so
    they travel with the checkpoint. Until :meth:`set_cmvn` is called it is the
    identity."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    @torch.no_grad()
    def set_cmvn(self, mean: Tensor, std: Tensor, floor: float = 1e-5) -> None:
        """Set per-bin ``mean`` and ``std``, both ``(n_mels,)``; ``std`` is
        floored at ``floor`` so a constant bin cannot divide by zero."""
        mean, std = torch.as_tensor(mean), torch.as_tensor(std)
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(
                f"CMVN stats must have shape {tuple(self.mean.shape)}, "
                f"got mean {tuple(mean.shape)} and std {tuple(std.shape)}"
            )
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(floor))

    def forward(self, feats: Tensor) -> Tensor:
        return (feats - self.mean) / self.std


class SpecAugment(nn.Module):
    """Time warp, frequency masks and time masks (Park et al. 2019), training only.

    Applied after CMVN, masking with 0 (= the global mean), which matches
    ESPnet's mean-filling before normalisation. Masks and the warp stay inside
    each utterance's valid frames, so padding never absorbs them.
    """

    def __init__(self, cfg: SpecAugConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """``x`` ``(batch, frames, bins)``, ``lens`` ``(batch,)`` -> same shape."""
        if not (self.training and self.cfg.enabled):
            return x
        if self.cfg.time_warp > 0:
            x = self._time_warp(x, lens)
        b, t, f = x.shape
        mask = torch.zeros(b, t, f, dtype=torch.bool, device=x.device)
        bins = torch.arange(f, device=x.device)
        frames = torch.arange(t, device=x.device)
        for _ in range(self.cfg.freq_masks):
            width = torch.randint(0, self.cfg.freq_width + 1, (b,), device=x.device).clamp(max=f)
            start = (torch.rand(b, device=x.device) * (f - width + 1)).long()
            band = (bins[None] >= start[:, None]) & (bins[None] < (start + width)[:, None])
            mask |= band[:, None, :]
        for _ in range(self.cfg.time_masks):
            width = torch.randint(0, self.cfg.time_width + 1, (b,), device=x.device)
            width = torch.minimum(width, lens)
            start = (torch.rand(b, device=x.device) * (lens - width + 1)).long()
            span = (frames[None] >= start[:, None]) & (frames[None] < (start + width)[:, None])
            mask |= span[:, :, None]
        return x.masked_fill(mask, 0.0)

    def _time_warp(self, x: Tensor, lens: Tensor) -> Tensor:
        """ESPnet/TF time warp: a point ``c`` moves to ``c + w``, ``|w| < window``,
        both sides stretched by bicubic interpolation. One utterance at a time
        because every valid length differs."""
        window = self.cfg.time_warp
        out = x.clone()
        for i, n in enumerate(lens.tolist()):
            if n <= 2 * window + 1:
                continue
            c = int(torch.randint(window, n - window, ()))
            w = int(torch.randint(c - window, c + window, ())) + 1
            seg = x[i, :n][None, None].float()
            left = F.interpolate(seg[..., :c, :], size=(w, x.size(2)), mode="bicubic")
            right = F.interpolate(seg[..., c:, :], size=(n - w, x.size(2)), mode="bicubic")
            out[i, :n] = torch.cat([left, right], dim=2)[0, 0].to(x.dtype)
        return out


class VTLP(nn.Module):
    """Vocal tract length perturbation (Jaitly & Hinton 2013) on log-mel
    features, training only: each utterance's frequency axis is scaled by a
    factor drawn uniformly in ``[1 - max_warp, 1 + max_warp]``, piecewise
    linearly so that frequencies above ``cutoff`` of the band bend back to the
    band's top (Kaldi's VTLN warp above its upper inflection point). Works on
    the cached features: a bin's value is linearly interpolated from the bins
    around its warped centre frequency, so no audio is recomputed.

    Written here because Lhotse's and torchaudio's VTLP act on audio or on the
    filterbank at extraction time, and the features are extracted once per
    corpus. The bin centres are the feature extractor's (:func:`mel_centres`),
    equally spaced in mel; the band's top is the last filter's right edge.
    """

    def __init__(self, n_mels: int, max_warp: float, cutoff: float = 0.8):
        super().__init__()
        self.max_warp = max_warp
        centres = mel_centres()
        if len(centres) != n_mels:
            raise ValueError(f"VTLP: the features have {len(centres)} mel bins, the model expects {n_mels}")
        centres_mel = lin2mel(centres)
        self.first_mel, self.step = float(centres_mel[0]), float(centres_mel[1] - centres_mel[0])
        self.high_hz = float(mel2lin(centres_mel[-1] + self.step))
        self.cutoff_hz = cutoff * self.high_hz
        self.register_buffer("centres_hz", torch.from_numpy(centres).float(), persistent=False)

    def forward(self, feats: Tensor) -> Tensor:
        """``(batch, frames, n_mels)`` log-mel -> the same, each utterance warped."""
        if not (self.training and self.max_warp > 0):
            return feats
        alpha = 1 + (torch.rand(feats.size(0), device=feats.device) * 2 - 1) * self.max_warp
        return self.warp(feats, alpha)

    def warp(self, feats: Tensor, alpha: Tensor) -> Tensor:
        """Scale the frequency axis of utterance ``i`` by ``alpha[i]``: content
        at ``f`` moves to ``alpha * f`` (below the cutoff)."""
        n = feats.size(2)
        f = self.centres_hz[None]  # (1, n_mels)
        alpha = alpha[:, None].to(f.dtype)
        # The value at f comes from f / alpha below the cutoff; above it, from
        # the line through (cutoff, cutoff / alpha) and (high, high).
        low = self.cutoff_hz / alpha
        above = low + (f - self.cutoff_hz) * (self.high_hz - low) / (self.high_hz - self.cutoff_hz)
        src_hz = torch.where(f <= self.cutoff_hz, f / alpha, above)
        # Lhotse's lin2mel is NumPy's; the same formula in torch, on any device.
        src_mel = 1127.0 * torch.log1p(src_hz / 700.0)
        pos = ((src_mel - self.first_mel) / self.step).clamp(0, n - 1)  # (batch, n_mels) fractional bin
        lo = pos.floor().long().clamp(max=n - 2)
        w = (pos - lo).to(feats.dtype)[:, None, :]
        idx = lo[:, None, :].expand(-1, feats.size(1), -1)
        left = feats.gather(2, idx)
        return left + w * (feats.gather(2, idx + 1) - left)


def subsampled_lengths(lens: Tensor) -> Tensor:
    """Frames after two ``kernel=3, stride=2`` convolutions without padding:
    ``((n - 1) // 2 - 1) // 2``."""
    return torch.div(torch.div(lens - 1, 2, rounding_mode="floor") - 1, 2, rounding_mode="floor")


class Conv2dSubsampling(nn.Module):
    """ESPnet's ``Conv2dSubsampling``: two 3x3 stride-2 Conv2d + ReLU, then a
    linear map of the flattened ``(channels x bins')`` to ``d_model``.

    A valid output frame only sees valid input frames (receptive field of 7
    frames, stride 4), so padding cannot leak into it.
    """

    def __init__(self, n_mels: int, d_model: int, channels: int | None = None):
        super().__init__()
        # ESPnet uses d_model channels; the second convolution then costs
        # 9 * d_model**2 MACs per output cell and dominates a small model's step
        # on a CPU. Fewer channels (as icefall's subsampling does) cut that.
        c = channels or d_model
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, 3, 2),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, 2),
            nn.ReLU(),
        )
        self.out = nn.Linear(c * (((n_mels - 1) // 2 - 1) // 2), d_model)

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """``(batch, frames, n_mels)`` -> ``(batch, frames', d_model)``, lengths ``(batch,)``."""
        x = self.conv(x[:, None])  # (batch, channels, frames', bins')
        b, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * f))
        return x, subsampled_lengths(lens)


class Frontend(nn.Module):
    """VTLP (training only) -> global CMVN -> per-utterance mean normalisation
    (optional) -> SpecAugment (training only) -> Conv2d subsampling x4."""

    def __init__(
        self,
        n_mels: int,
        d_model: int,
        specaug: SpecAugConfig,
        subsampling_channels: int | None = None,
        utterance_cmn: bool = False,
        vtlp: float = 0.0,
    ):
        super().__init__()
        self.vtlp = VTLP(n_mels, vtlp) if vtlp > 0 else nn.Identity()
        self.cmvn = GlobalCMVN(n_mels)
        self.utterance_cmn = utterance_cmn
        self.specaug = SpecAugment(specaug)
        self.subsampling = Conv2dSubsampling(n_mels, d_model, subsampling_channels)

    def forward(self, feats: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """``feats`` ``(batch, frames, n_mels)`` -> ``(batch, frames', d_model)`` and
        ``(batch,)`` lengths. Padded frames are zeroed first, so their values
        never matter."""
        if int(lens.min()) < 7:
            raise ValueError("every utterance needs >= 7 frames for x4 subsampling")
        valid = lengths_to_mask(lens, feats.size(1))[:, :, None]
        x = self.cmvn(self.vtlp(feats)).masked_fill(~valid, 0.0)
        if self.utterance_cmn:
            # Cepstral mean normalisation per utterance: a voice's or recording
            # chain's fixed spectral tilt is removed, which global CMVN keeps.
            mean = x.sum(1, keepdim=True) / lens[:, None, None].to(x.dtype)
            x = (x - mean).masked_fill(~valid, 0.0)
        x = self.specaug(x, lens)
        return self.subsampling(x, lens)
