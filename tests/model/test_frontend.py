import numpy as np
import pytest
import torch

from dualasr.model import SpecAugConfig
from dualasr.model.frontend import VTLP, Conv2dSubsampling, Frontend, GlobalCMVN, SpecAugment


@pytest.mark.parametrize("channels", [None, 4])
@pytest.mark.parametrize("n", [7, 8, 9, 10, 11, 12, 13, 50, 101, 400])
def test_subsampled_length_is_the_number_of_conv_outputs(n, channels):
    sub = Conv2dSubsampling(80, 16, channels)
    x, lens = sub(torch.randn(1, n, 80), torch.tensor([n]))
    assert x.shape == (1, int(lens), 16)
    assert int(lens) == ((n - 1) // 2 - 1) // 2


def test_subsampling_valid_outputs_ignore_padding():
    torch.manual_seed(0)
    sub = Conv2dSubsampling(80, 16)
    x = torch.randn(2, 60, 80)
    lens = torch.tensor([60, 33])
    y, out_lens = sub(x, lens)
    x2 = x.clone()
    x2[1, 33:] = 1e3  # change only the padding of utterance 1
    y2, _ = sub(x2, lens)
    n = int(out_lens[1])
    assert torch.equal(y[1, :n], y2[1, :n])
    assert not torch.equal(y[1, n:], y2[1, n:])  # the padded outputs do see it


def test_subsampling_channels_default_to_d_model_and_can_be_fewer():
    assert Conv2dSubsampling(80, 16).conv[2].out_channels == 16
    small = Conv2dSubsampling(80, 16, channels=4)
    assert small.conv[0].out_channels == small.conv[2].out_channels == 4
    assert small.out.in_features == 4 * 19


def test_cmvn_normalises_and_is_saved_in_the_state_dict():
    cmvn = GlobalCMVN(3)
    mean, std = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 0.5, 0.0])
    cmvn.set_cmvn(mean, std)
    out = cmvn(torch.tensor([[[3.0, 2.5, 3.0]]]))
    assert torch.allclose(out, torch.tensor([[[1.0, 1.0, 0.0]]]))
    fresh = GlobalCMVN(3)
    fresh.load_state_dict(cmvn.state_dict())
    assert torch.equal(fresh.mean, mean) and fresh.std[2] == 1e-5  # floored
    with pytest.raises(ValueError, match="shape"):
        cmvn.set_cmvn(torch.zeros(4), torch.ones(4))


def test_specaugment_only_in_training():
    aug = SpecAugment(SpecAugConfig(time_warp=0)).eval()
    x = torch.randn(2, 100, 80)
    assert torch.equal(aug(x, torch.tensor([100, 50])), x)


def test_time_masks_stay_inside_valid_frames():
    torch.manual_seed(0)
    aug = SpecAugment(SpecAugConfig(time_warp=0, freq_masks=0, time_width=10)).train()
    x = torch.randn(4, 100, 80) + 10.0  # no natural zeros
    lens = torch.tensor([100, 80, 50, 20])
    masked = aug(x, lens) == 0
    frames = masked.all(dim=2)
    assert (masked.any(dim=2) == frames).all()  # whole frames only
    assert frames.any()
    for i, n in enumerate(lens.tolist()):
        assert not frames[i, n:].any()
        assert frames[i].sum() <= 2 * 10


def test_freq_masks_are_bands_shared_by_all_frames():
    torch.manual_seed(0)
    aug = SpecAugment(SpecAugConfig(time_warp=0, time_masks=0, freq_width=10)).train()
    x = torch.randn(4, 30, 80) + 10.0
    masked = aug(x, torch.tensor([30, 30, 20, 10])) == 0
    bins = masked.any(dim=1)  # (batch, 80)
    assert bins.any()
    assert (masked == bins[:, None, :]).all()
    assert (bins.sum(dim=1) <= 2 * 10).all()


def test_time_warp_keeps_length_and_moves_content():
    torch.manual_seed(1)
    aug = SpecAugment(SpecAugConfig(freq_masks=0, time_masks=0, time_warp=5)).train()
    x = torch.linspace(0, 1, 60)[None, :, None].expand(2, 60, 4).contiguous()
    y = aug(x, torch.tensor([60, 8]))
    assert y.shape == x.shape
    assert torch.equal(y[1], x[1])  # too short to warp: untouched
    assert not torch.allclose(y[0], x[0])
    # the ends stay (nearly) in place; bicubic with align_corners=False shifts them slightly
    assert torch.allclose(y[0, 0], x[0, 0], atol=0.02)
    assert torch.allclose(y[0, 59], x[0, 59], atol=0.02)


def test_frontend_rejects_too_short_utterances():
    fe = Frontend(80, 16, SpecAugConfig(enabled=False))
    with pytest.raises(ValueError, match=">= 7 frames"):
        fe(torch.randn(1, 6, 80), torch.tensor([6]))


def test_vtlp_moves_spectral_content_by_the_warp_factor():
    vtlp = VTLP(80, max_warp=0.2)
    x = torch.zeros(2, 5, 80)
    x[:, :, 30] = 1.0  # one peak, at bin 30 in every frame
    y = vtlp.warp(x, torch.tensor([1.15, 0.85]))
    for i, alpha in enumerate((1.15, 0.85)):
        peak_hz = float((y[i, 0] * vtlp.centres_hz).sum() / y[i, 0].sum())
        assert peak_hz == pytest.approx(alpha * float(vtlp.centres_hz[30]), rel=0.03)
    # factor 1 is the identity, and the warp never reads across frames
    assert torch.allclose(vtlp.warp(x, torch.ones(2)), x, atol=1e-4)
    assert torch.equal(y[:, 0], y[:, 4])


def test_vtlp_only_in_training_and_draws_a_factor_per_utterance():
    torch.manual_seed(0)
    # three copies of one utterance, smooth along frequency so a warp changes it:
    # their outputs differ only if each drew its own factor
    x = torch.randn(1, 20, 80).cumsum(2).expand(3, -1, -1).contiguous()
    vtlp = VTLP(80, max_warp=0.1).eval()
    assert torch.equal(vtlp(x), x)
    y = vtlp.train()(x)
    assert all((y[i] - x[i]).abs().mean() > 0 for i in range(3))
    assert not torch.allclose(y[0], y[1]) and not torch.allclose(y[1], y[2]) and not torch.allclose(y[0], y[2])
    assert torch.equal(VTLP(80, max_warp=0.0).train()(x), x)


def test_utterance_cmn_removes_a_per_utterance_offset_and_ignores_padding():
    torch.manual_seed(0)
    fe = Frontend(80, 16, SpecAugConfig(enabled=False), utterance_cmn=True).eval()
    x = torch.randn(2, 40, 80)
    lens = torch.tensor([40, 25])
    shifted = x.clone()
    shifted[1, :25] += torch.linspace(-3, 3, 80)  # a channel's spectral tilt on utterance 1
    shifted[1, 25:] = 1e3  # and different padding
    (y, _), (y2, _) = fe(x, lens), fe(shifted, lens)
    assert torch.allclose(y, y2, atol=1e-4)
    plain = Frontend(80, 16, SpecAugConfig(enabled=False)).eval()
    plain.load_state_dict(fe.state_dict())
    assert not torch.allclose(plain(x, lens)[0], plain(shifted, lens)[0], atol=1e-2)


def test_vtlp_bin_centres_are_the_feature_extractors():
    # a pure tone at bin k's centre frequency peaks at bin k of the real features
    from dualasr.data.features import SAMPLE_RATE, extractor

    vtlp = VTLP(80, max_warp=0.1)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    for k in (5, 30, 70):
        tone = np.sin(2 * np.pi * float(vtlp.centres_hz[k]) * t).astype(np.float32)
        feats = extractor().extract(tone, SAMPLE_RATE)
        assert int(feats.mean(0).argmax()) == k
    assert vtlp.high_hz == pytest.approx(SAMPLE_RATE / 2 - 400, abs=0.1)  # Lhotse's default top: Nyquist - 400 Hz
