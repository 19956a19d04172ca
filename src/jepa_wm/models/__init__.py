"""JEPA world model: ViT encoder, action-conditioned predictor, objectives, checkpoints."""

from jepa_wm.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jepa_wm.models.vjepa2_files import load_vjepa2
from jepa_wm.models.world_model import WorldModel

__all__ = ["CheckpointError", "WorldModel", "load_checkpoint", "load_vjepa2", "save_checkpoint"]
