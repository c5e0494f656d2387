from .reparameterize import fold_batch_norm, reparameterize_model

__all__ = ['fold_batch_norm', 'reparameterize_model']
