"""ESPnet's side of ``bench/compare_espnet.py``: ESPnet2's ``ESPnetSTModel`` with
an extra ASR decoder, built to the sizes and loss mix of the batch file's
dualasr DO spec, timing training steps on its batches (protocol in
``bench/_step_server.py``). Runs in ESPnet's venv (``bench/espnet_env.sh``):

    bench/.venv-espnet/bin/python bench/_espnet_worker.py BATCHES.npz --threads 1

dualasr's surface output is ESPnet's ASR side (``ctc`` + ``extra_asr_decoder``,
targets ``src_text``), its meaning output the ST side (``decoder``, targets
``text``; ``st_ctc`` only with a meaning CTC weight). With dualasr's weights
``w`` normalised to sum to 1, ESPnet's loss::

    (1 - asr_weight) * [st_mtlalpha CTC_m + (1 - st_mtlalpha) ATT_m]
        + asr_weight * [mtlalpha CTC_s + (1 - mtlalpha) ATT_s]

equals dualasr's ``sum_o w[ctc_o] CTC_o + w[att_o] ATT_o`` term by term with
``asr_weight = w[ctc_s] + w[att_s]``, ``mtlalpha = w[ctc_s] / asr_weight``,
``st_mtlalpha = w[ctc_m] / (w[ctc_m] + w[att_m])``, ``mt_weight = 0``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _step_server import count, protocol_stream, read_batches, serve


def loss_mix(weights: dict[str, float]) -> dict[str, float]:
    """ESPnet's ``asr_weight``, ``mtlalpha``, ``st_mtlalpha`` for dualasr's DO weights."""
    total = sum(weights.values())
    w = {k: v / total for k, v in weights.items()}
    asr = w.get("ctc_surface", 0.0) + w["att_surface"]
    st = w.get("ctc_meaning", 0.0) + w["att_meaning"]
    return {
        "asr_weight": asr,
        "mtlalpha": w.get("ctc_surface", 0.0) / asr,
        "st_mtlalpha": w.get("ctc_meaning", 0.0) / st,
        "mt_weight": 0.0,
        "scale": 1 / total,  # ESPnet's loss = dualasr's * scale
    }


def check_plain(model: dict) -> None:
    """ESPnet's ST model has one shared encoder: refuse dualasr's methods."""
    extra = [k for k in ("hierarchy", "adapters", "separation") if model.get(k)]
    if model["encoder"]["task_specific_layers"]:
        extra.append("encoder.task_specific_layers")
    if model["mode"] != "do" or extra or model["specaug"]["enabled"] or model["vtlp"]:
        raise SystemExit(f"ESPnet worker: only a plain DO model without SpecAugment/VTLP compares; got "
                         f"mode {model['mode']}, {extra or 'no method'}, specaug {model['specaug']['enabled']}, "
                         f"vtlp {model['vtlp']}")  # fmt: skip


def build(spec: dict, mean: torch.Tensor, std: torch.Tensor, stats_dir: Path):
    from espnet2.asr.ctc import CTC
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
    from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
    from espnet2.layers.abs_normalize import AbsNormalize
    from espnet2.layers.global_mvn import GlobalMVN
    from espnet2.layers.utterance_mvn import UtteranceMVN
    from espnet2.st.espnet_model import ESPnetSTModel

    m = spec["model"]
    check_plain(m)
    d, enc, dec = m["d_model"], m["encoder"], m["decoder"]
    v_s, v_m = spec["vocab"]["surface"], spec["vocab"]["meaning"]

    class Normalize(AbsNormalize):
        """dualasr's front-end normalisation with ESPnet's layers: global CMVN,
        then (``utterance_cmn``) each utterance's own mean removed."""

        def __init__(self, stats_file: Path, utterance: bool):
            super().__init__()
            self.glob = GlobalMVN(stats_file)
            self.utt = UtteranceMVN(norm_means=True, norm_vars=False) if utterance else None

        def forward(self, x, lens):
            x, lens = self.glob(x, lens)
            return self.utt(x, lens) if self.utt is not None else (x, lens)

    # GlobalMVN reads sums: count 1, sum = mean, sum_square = std^2 + mean^2.
    mean64, std64 = mean.double().numpy(), std.double().numpy()
    stats = stats_dir / "feats_stats.npz"
    np.savez(stats, count=np.array(1.0), sum=mean64, sum_square=std64**2 + mean64**2)

    encoder = ConformerEncoder(
        input_size=m["n_mels"], output_size=d, attention_heads=enc["heads"], linear_units=enc["ffn_dim"],
        num_blocks=enc["layers"], dropout_rate=enc["dropout"], positional_dropout_rate=enc["dropout"],
        attention_dropout_rate=enc["attn_dropout"], input_layer="conv2d", normalize_before=True,
        macaron_style=True, rel_pos_type="latest", pos_enc_layer_type="rel_pos",
        selfattention_layer_type="rel_selfattn", activation_type="swish", use_cnn_module=True,
        cnn_module_kernel=enc["kernel"],
        use_flash_attn=False,  # flash-attn is CUDA only; ESPnet falls back to this on a CPU anyway
    )  # fmt: skip

    def decoder(vocab: int) -> TransformerDecoder:
        return TransformerDecoder(
            vocab_size=vocab, encoder_output_size=d, attention_heads=dec["heads"], linear_units=dec["ffn_dim"],
            num_blocks=dec["layers"], dropout_rate=dec["dropout"], positional_dropout_rate=dec["dropout"],
            self_attention_dropout_rate=dec["attn_dropout"], src_attention_dropout_rate=dec["attn_dropout"],
            normalize_before=True, use_flash_attn=False,
        )  # fmt: skip

    def tokens(n: int) -> list[str]:  # blank first, sos/eos last, as dualasr's tokenizers
        return ["<blank>", *(f"t{i}" for i in range(1, n - 1)), "<sos/eos>"]

    mix = loss_mix(m["weights"])
    model = ESPnetSTModel(
        vocab_size=v_m, token_list=tokens(v_m), frontend=None, specaug=None,
        normalize=Normalize(stats, m["utterance_cmn"]), preencoder=None, encoder=encoder, hier_encoder=None,
        md_encoder=None, extra_mt_encoder=None, postencoder=None, decoder=decoder(v_m),
        extra_asr_decoder=decoder(v_s), extra_mt_decoder=None,
        ctc=CTC(odim=v_s, encoder_output_size=d) if mix["mtlalpha"] > 0 else None,
        st_ctc=CTC(odim=v_m, encoder_output_size=d) if mix["st_mtlalpha"] > 0 else None,
        st_joint_network=None, src_vocab_size=v_s, src_token_list=tokens(v_s),
        asr_weight=mix["asr_weight"], mt_weight=0.0, mtlalpha=mix["mtlalpha"], st_mtlalpha=mix["st_mtlalpha"],
        lsm_weight=m["label_smoothing"], length_normalized_loss=False,
        report_cer=False, report_wer=False, report_bleu=False,
    )  # fmt: skip
    return model, mix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batches", type=Path)
    ap.add_argument("--threads", type=int, required=True)
    args = ap.parse_args()
    proto = protocol_stream()  # before ESPnet's imports, which print
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import espnet

    spec, mean, std, batches = read_batches(args.batches)
    with tempfile.TemporaryDirectory() as tmp:
        model, mix = build(spec, mean, std, Path(tmp))
    model.train()

    def loss_fn(b: dict[str, torch.Tensor]) -> torch.Tensor:
        # GlobalMVN normalises a tensor that needs no gradient in place: give it a copy.
        return model(
            speech=b["feats"].clone(), speech_lengths=b["feat_lens"],
            text=b["meaning"], text_lengths=b["meaning_lens"],
            src_text=b["surface"], src_text_lengths=b["surface_lens"],
        )[0]  # fmt: skip

    enc = model.encoder
    params = {
        "subsampling": count(enc.embed),
        "encoder blocks": count(enc) - count(enc.embed) + count(model.normalize),
        "surface decoder": count(model.extra_asr_decoder),
        "meaning decoder": count(model.decoder),
        "surface CTC": count(getattr(model, "ctc", None)),
        "meaning CTC": count(getattr(model, "st_ctc", None)),
        "total": count(model),
        "subsampling channels": enc.embed.conv[0].out_channels,
    }
    mix_text = (f"asr_weight {mix['asr_weight']:g}, mtlalpha {mix['mtlalpha']:.4g}, "
                f"st_mtlalpha {mix['st_mtlalpha']:g}, mt_weight 0")  # fmt: skip
    if abs(mix["scale"] - 1) > 1e-9:
        mix_text += f" (ESPnet's loss = dualasr's x {mix['scale']:.4g})"
    serve(loss_fn, model.parameters(), batches, spec, params, proto,
          extra={"espnet": espnet.__version__, "loss": mix_text})  # fmt: skip


if __name__ == "__main__":
    main()
