"""Evaluation metrics of mmseg-dsnet."""
from .lesion_metric import LesionMetric

__all__ = ['LesionMetric']
