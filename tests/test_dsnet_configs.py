"""DSNet's shipped configs: the budget through get_flops.py, and every
variant (protocols, ablations) builds and trains a step."""
import glob

import pytest
import torch
from conftest import REPO, load_tool

DSNET_CONFIGS = sorted(
    glob.glob(str(REPO / 'configs/dsnet/*.py')) +
    glob.glob(str(REPO / 'configs/dsnet/design/*.py')))


def test_budget_of_the_model_as_trained_and_deployed():
    get_flops = load_tool('analysis_tools/get_flops.py').get_flops
    result = get_flops(str(REPO / 'configs/dsnet/dsnet_isic2018.py'),
                       (256, 256))
    # The paper's budget: 0.291 M parameters (+-3 %), 0.287 GFLOPs (+-5 %).
    assert result['params'] == pytest.approx(0.291e6, rel=0.03)
    assert result['flops'] == pytest.approx(0.287e9, rel=0.05)
    deploy = result['deploy']
    assert deploy['params'] < result['params']
    assert deploy['flops'] <= result['flops']


@pytest.mark.parametrize(
    'config', DSNET_CONFIGS, ids=lambda p: p.rsplit('/', 1)[-1])
def test_config_builds_and_trains_one_step(config):
    import mmseg_dsnet  # noqa: F401
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(config)
    assert cfg.model.decode_head.threshold == 0.5
    model = MODELS.build(cfg.model)
    torch.manual_seed(0)
    inputs = torch.randn(2, 3, 64, 64)
    samples = []
    for _ in range(2):
        label = torch.zeros(1, 64, 64, dtype=torch.long)
        label[:, 16:48, 20:44] = 1
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64),
                                 pad_shape=(64, 64)))
        samples.append(sample)
    losses = model.loss(inputs, samples)
    # mmengine sums every key containing 'loss' (deep supervision too).
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and total > 0
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)


def test_every_shipped_config_scores_the_masks_its_model_outputs():
    from mmengine.config import Config
    from mmseg_dsnet.engine import (ThresholdMismatchError,
                                    check_decision_thresholds)
    from mmseg_dsnet.engine.preflight import mask_threshold
    configs = [p for p in glob.glob(str(REPO / 'configs/**/*.py'),
                                    recursive=True) if '/_base_/' not in p]
    assert len(configs) > len(DSNET_CONFIGS)
    for path in configs:
        check_decision_thresholds(Config.fromfile(path))
    # MMSegmentation's own default for a 1-channel head is 0.3; 2 channels
    # take the argmax, i.e. 0.5, whatever the head's threshold says.
    assert mask_threshold(dict(out_channels=1)) == 0.3
    assert mask_threshold(dict(num_classes=2, threshold=0.2)) == 0.5
    cfg = Config.fromfile(DSNET_CONFIGS[0])
    cfg.model.decode_head.pop('threshold')
    with pytest.raises(ThresholdMismatchError, match='above probability 0.3'):
        check_decision_thresholds(cfg)
