# The default with the BIC loss's band and interior terms as per-pixel
# weights on the image-wide BCE (region_norm='image'), as the fourth round's
# dsnet-design-e-bic-pixel-weight did for design E: band pixels weigh 5x,
# interior pixels 1.5x. Averaged over their own pixels (the default), the
# band term alone weighs as much as the whole image's BCE.
_base_ = ['./dsnet-design-e-deeper-eighth_isic2017.py']
model = dict(
    decode_head=dict(
        loss_decode=dict(
            region_norm='image', boundary_weight=4.0, interior_weight=0.5)))
