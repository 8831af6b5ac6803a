"""Conversion of original AudioLDM checkpoints into tta model folders (``tta convert``).

One module per component (``unet``, ``vae``, ``hifigan``, ``clap_text``) maps the original key layout onto the
library class tta uses; ``audioldm_ckpt`` reads the checkpoint and writes the folder.
"""

from tta.convert.audioldm_ckpt import ConvertOptions, convert_audioldm_checkpoint, read_state_dict

__all__ = ["ConvertOptions", "convert_audioldm_checkpoint", "read_state_dict"]
