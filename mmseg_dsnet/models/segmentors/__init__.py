from .flip_consistent_encoder_decoder import FlipConsistentEncoderDecoder
from .lesion_tta_model import LesionTTAModel

__all__ = ['FlipConsistentEncoderDecoder', 'LesionTTAModel']
