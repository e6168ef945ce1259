"""The native multimodal embedding model: inputs, modality tokenizers, backbone, presets.

    enc = gemb.model.load("minilm-l6")
    emb_nd = enc.embed(["a cat", gemb.model.Image(pixels), [image, "caption"]], dim=128)
"""

from gemb.model.backbone import EmbeddingModel, ModelConfig
from gemb.model.encoder import Encoder, load, task_prompt
from gemb.model.inputs import (Audio, Image, Interleaved, Text, TruncationWarning, Video,
                               composite_alpha, load_audio, load_image, load_pdf, load_video,
                               resize_rgb)
from gemb.model.presets import Preset

__all__ = ["Audio", "EmbeddingModel", "Encoder", "Image", "Interleaved", "ModelConfig", "Preset",
           "Text", "TruncationWarning", "Video", "composite_alpha", "load", "load_audio",
           "load_image", "load_pdf", "load_video", "resize_rgb", "task_prompt"]
