from .lesion_logit import decision_map, lesion_logit
from .reparameterize import (fold_batch_norm, reparameterization_changes,
                             reparameterize_model)

__all__ = [
    'decision_map', 'fold_batch_norm', 'lesion_logit',
    'reparameterization_changes', 'reparameterize_model'
]
