# The default trained as it is, evaluated with an exponential moving average
# of its weights (mmengine's EMAHook): after every iteration the average
# moves 0.001 of the way to the trained weights, so it spans about the last
# 1000 iterations (six epochs of the design runs). Checkpoints hold the
# average as their state_dict; the model, its FLOPs and its graph are the
# default's.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
custom_hooks = _base_.custom_hooks + [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001)
]
