"""Models: front end, Conformer encoder, Transformer decoders, the SSO/MSO/DO model.

Example::

    cfg = preset("paper", mode="do")
    model = build_model(cfg, vocab_sizes={"surface": 100, "meaning": 100})
    model.set_cmvn(mean, std)
    loss, stats = model(feats, feat_lens, {"surface": (ys, ys_lens), "meaning": (ym, ym_lens)})
"""

from .asr import BLANK, CTC, IGNORE_ID, DualASR, Targets, TaskLosses, add_sos_eos, build_model
from .config import (
    DEFAULT_WEIGHTS,
    MODE_OUTPUTS,
    PRESETS,
    AdapterConfig,
    DecoderConfig,
    EncoderConfig,
    HierarchyConfig,
    ModelConfig,
    PretrainedConfig,
    SeparationConfig,
    SpecAugConfig,
    preset,
)
from .conformer import BottleneckAdapter, ConformerEncoder, EncoderOutput
from .decoder import DecoderState, TransformerDecoder
from .frontend import Frontend

__all__ = [
    "AdapterConfig",
    "BottleneckAdapter",
    "HierarchyConfig",
    "BLANK",
    "CTC",
    "DEFAULT_WEIGHTS",
    "IGNORE_ID",
    "MODE_OUTPUTS",
    "PRESETS",
    "ConformerEncoder",
    "DecoderConfig",
    "DecoderState",
    "DualASR",
    "EncoderConfig",
    "EncoderOutput",
    "Frontend",
    "ModelConfig",
    "PretrainedConfig",
    "SeparationConfig",
    "SpecAugConfig",
    "TaskLosses",
    "Targets",
    "TransformerDecoder",
    "add_sos_eos",
    "build_model",
    "preset",
]
