from .lesion_tta_model import LesionTTAModel

__all__ = ['LesionTTAModel']
