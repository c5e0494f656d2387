# Twenty-ninth-round candidate: the default design with a training-only
# 1x1 convolution on the features the classifier reads that regresses the
# normalised signed distance to the lesion boundary (L1, weight 0.5). The
# masks tell the network which side of the rim a pixel is on; the distance
# map also tells it how far the rim is, a target about the lesion's shape
# as a whole. The regressor is dropped by re-parameterisation: the deployed
# model, its FLOPs and its latency are the default's.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(decode_head=dict(distance_loss_weight=0.5))
