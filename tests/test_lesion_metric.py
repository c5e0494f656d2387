"""Tests of LesionMetric against hand-computed confusion matrices."""
import math
import pickle
from pathlib import Path

import pytest
import torch

from mmseg_dsnet.evaluation import LesionMetric

# 2 x 3 example shared by several tests.
#   GT          prob (lesion)      prediction (prob > 0.5)
#   1 1 0       0.9 0.5 0.6        1 0 1
#   0 1 0       0.2 0.7 0.5        0 1 0
# Hand count: TP = (0,0),(1,1) = 2; FP = (0,2) = 1; FN = (0,1) = 1;
#             TN = (1,0),(1,2) = 2.  The two 0.5 pixels are NOT lesion.
GT_2X3 = [[1, 1, 0], [0, 1, 0]]
PROB_2X3 = [[0.9, 0.5, 0.6], [0.2, 0.7, 0.5]]
# Logits giving the same decisions; logit 0.0 is sigmoid 0.5 exactly.
LOGIT_2X3 = [[2.0, 0.0, 0.3], [-1.0, 1.0, 0.0]]
COUNTS_2X3 = dict(tp=2, fp=1, fn=1, tn=2)


def make_sample(seg_logits, gt, pred=None):
    """A data sample as MMEngine hands it to a metric (a plain dict)."""
    seg_logits = torch.as_tensor(seg_logits, dtype=torch.float32)
    if seg_logits.dim() == 2:
        seg_logits = seg_logits[None]
    gt = torch.as_tensor(gt, dtype=torch.long)[None]
    if pred is None:
        pred = torch.zeros_like(gt)
    else:
        pred = torch.as_tensor(pred, dtype=torch.long)[None]
    return dict(
        seg_logits=dict(data=seg_logits),
        pred_sem_seg=dict(data=pred),
        gt_sem_seg=dict(data=gt))


def same_size_metric(height, width, **kwargs):
    """Metric whose low-res size equals the image size (an exact copy)."""
    return LesionMetric(low_res_size=(height, width), **kwargs)


def pct(value):
    return pytest.approx(100 * value, abs=1e-4)


def check_pooled(metrics, tp, fp, fn, tn, suffix=''):
    """Compare the five pooled figures with their textbook definitions."""
    assert metrics['IoU' + suffix] == pct(tp / (tp + fp + fn))
    assert metrics['DSC' + suffix] == pct(2 * tp / (2 * tp + fp + fn))
    assert metrics['Acc' + suffix] == pct((tp + tn) / (tp + fp + fn + tn))
    assert metrics['Sen' + suffix] == pct(tp / (tp + fn))
    assert metrics['Spe' + suffix] == pct(tn / (tn + fp))


def run(metric, samples, batch_size=2):
    for start in range(0, len(samples), batch_size):
        metric.process({}, samples[start:start + batch_size])
    return metric.compute_metrics(list(metric.results))


def test_keys_are_exactly_the_documented_ones():
    metric = same_size_metric(2, 3)
    metrics = run(metric, [make_sample(PROB_2X3, GT_2X3)])
    assert list(metrics) == [
        'IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'IoU_orig', 'DSC_orig', 'Acc_orig',
        'Sen_orig', 'Spe_orig', 'mIoU_img', 'mDSC_img', 'TJ', 'mIoU', 'mDice'
    ]
    assert all(type(value) is float for value in metrics.values())


def test_one_channel_probability_strict_threshold_and_pred_ignored():
    # pred_sem_seg as MMSegmentation's default 0.3 threshold would give it:
    # everything but the 0.2 pixel. The metric must not use it.
    pred_at_03 = [[1, 1, 1], [0, 1, 1]]
    metric = same_size_metric(2, 3)
    metric.process({}, [make_sample(PROB_2X3, GT_2X3, pred=pred_at_03)])
    assert metric.results == [{
        'counts_orig': [2, 1, 1, 2],
        'counts_low': [2, 1, 1, 2]
    }]
    metrics = metric.compute_metrics(metric.results)
    check_pooled(metrics, **COUNTS_2X3)
    check_pooled(metrics, **COUNTS_2X3, suffix='_orig')
    # By hand: IoU 2/4, DSC 4/6, Acc 4/6, Sen 2/3, Spe 2/3.
    assert metrics['IoU'] == 50.0
    assert metrics['DSC'] == pytest.approx(66.6667, abs=1e-4)
    assert metrics['Sen'] == pytest.approx(66.6667, abs=1e-4)


def test_one_channel_logits_when_asked():
    metric = same_size_metric(2, 3, single_channel_input='logit')
    metric.process({}, [make_sample(LOGIT_2X3, GT_2X3)])
    assert metric.results[0]['counts_orig'] == [2, 1, 1, 2]


@pytest.mark.parametrize('mode', ['probability', 'logit'])
def test_one_channel_output_scores_lesion_label_0(mode):
    """With masks whose lesion is label 0 (``lesion_index=0``), a 1-channel
    output (mmseg's probability of label 1) was read as the lesion's: a
    perfect model scored 0 everywhere, exit 0."""
    lesion_0 = [[1 - label for label in row] for row in GT_2X3]
    # The probability of label 1 (background here) is 1 - lesion's.
    label_1 = torch.tensor(PROB_2X3, dtype=torch.float64).neg().add(1)
    if mode == 'logit':
        label_1 = label_1.logit()
    metric = same_size_metric(2, 3, lesion_index=0,
                              single_channel_input=mode)
    metric.process({}, [make_sample(label_1, lesion_0)])
    # The 0.5 pixels stay background (not above the threshold).
    assert metric.results[0]['counts_orig'] == [2, 1, 1, 2]
    perfect = same_size_metric(2, 3, lesion_index=0)
    figures = run(perfect, [make_sample(
        [[0.1, 0.2, 0.9], [0.8, 0.3, 0.7]], lesion_0)])
    assert figures['IoU'] == 100 and figures['Spe'] == 100


def test_one_channel_output_has_no_lesion_label_but_0_or_1():
    """A 1-channel output is the probability of label 1: another lesion
    label was read as label 0 (``1 - p``), silently."""
    from mmseg_dsnet.models.utils.lesion_logit import \
        stored_lesion_probability
    probability = torch.tensor([[[0.2, 0.9]]])
    assert stored_lesion_probability(probability, lesion_index=0)[
        0].tolist() == pytest.approx([0.8, 0.1])
    with pytest.raises(ValueError, match='lesion_index 2 is not a label of '
                       r'a 1-channel \(binary\) output'):
        stored_lesion_probability(probability, lesion_index=2)
    # Of more channels, lesion_index must be one of them.
    for channels in (2, 3):
        with pytest.raises(ValueError, match=f'lesion_index {channels} is '
                           f'not a channel of {channels}-channel'):
            stored_lesion_probability(torch.zeros(channels, 1, 2),
                                      lesion_index=channels)


def test_one_channel_logits_in_probability_mode_are_refused():
    metric = same_size_metric(2, 3)
    with pytest.raises(ValueError, match='logit'):
        metric.process({}, [make_sample(LOGIT_2X3, GT_2X3)])
    # Either bound alone gives the logits away: all >= 0 with one above
    # 1, or all <= 1 with one below 0.
    for logits in ([[0.2, 1.5, 0.0]], [[0.9, -0.3, 1.0]]):
        with pytest.raises(ValueError, match='look like raw logits'):
            metric.process({}, [make_sample(logits, [[1, 0, 0]])])
    assert metric.results == []
    with pytest.raises(ValueError, match='single_channel_input must be '
                       '"probability" or "logit", got \'softmax\''):
        LesionMetric(single_channel_input='softmax')


def test_two_channel_softmax_lesion_channel():
    logits = torch.tensor(LOGIT_2X3)
    # Background logit 0, lesion logit l: softmax lesion prob = sigmoid(l).
    two_channel = torch.stack([torch.zeros_like(logits), logits])
    metric = same_size_metric(2, 3)
    metric.process({}, [make_sample(two_channel, GT_2X3)])
    assert metric.results[0]['counts_orig'] == [2, 1, 1, 2]

    # lesion_index picks the channel (and the GT label): swap both.
    swapped_gt = [[1 - v for v in row] for row in GT_2X3]
    metric = same_size_metric(2, 3, lesion_index=0)
    metric.process({}, [make_sample(two_channel.flip(0), swapped_gt)])
    assert metric.results[0]['counts_orig'] == [2, 1, 1, 2]


@pytest.mark.parametrize('lesion_index', [0, 1])
def test_hard_labels_without_seg_logits_score_the_lesion_label(lesion_index):
    """Samples holding only ``pred_sem_seg`` are scored on its labels:
    lesion where it holds ``lesion_index``, whatever the threshold. By
    hand, GT 1 1 0 / 0 1 0 and prediction 1 0 1 / 0 1 1 with label 1 as
    lesion: TP (0,0),(1,1); FP (0,2),(1,2); FN (0,1); TN (1,0). With label
    0 as lesion both maps are flipped, so the counts are the same."""
    pred = [[1, 0, 1], [0, 1, 1]]
    gt = GT_2X3
    if lesion_index == 0:
        pred = [[1 - v for v in row] for row in pred]
        gt = [[1 - v for v in row] for row in gt]
    sample = make_sample(PROB_2X3, gt, pred=pred)
    del sample['seg_logits']
    for threshold in (0.5, 0.9):
        metric = same_size_metric(2, 3, lesion_index=lesion_index,
                                  threshold=threshold)
        metric.process({}, [sample])
        assert metric.results == [{'counts_orig': [2, 2, 1, 1],
                                   'counts_low': [2, 2, 1, 1]}]


def test_three_channels_take_the_softmax_lesion_probability():
    """More than two channels: the softmax over the channels, channel
    ``lesion_index``, thresholded, not the argmax. Per pixel (background,
    lesion, other) logits, by hand: (0, ln 3, 0) gives 3/5 = 0.6;
    (0, ln 2, ln 3) gives 2/6 = 0.33; (ln 2, ln 3, ln 2) gives 3/7 = 0.43,
    below 0.5 though the lesion channel is the largest."""
    ln = math.log
    logits = torch.tensor([[[0.0, 0.0, ln(2)]],
                           [[ln(3), ln(2), ln(3)]],
                           [[0.0, ln(3), ln(2)]]])
    gt = [[1, 0, 1]]
    metric = same_size_metric(1, 3)
    metric.process({}, [make_sample(logits, gt)])
    assert metric.results[0]['counts_orig'] == [1, 0, 1, 1]
    metric = same_size_metric(1, 3, threshold=0.42)
    metric.process({}, [make_sample(logits, gt)])
    assert metric.results[0]['counts_orig'] == [2, 0, 0, 1]


def test_two_channel_at_half_equals_argmax_including_ties():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 16, 16, generator=generator)
    logits[1, :4] = logits[0, :4]  # exact ties: argmax picks background
    gt = (torch.rand(16, 16, generator=generator) > 0.5).long()
    metric = same_size_metric(16, 16)
    metric.process({}, [make_sample(logits, gt)])
    argmax = logits.argmax(dim=0)
    expected = [
        int(((argmax == 1) & (gt == 1)).sum()),
        int(((argmax == 1) & (gt == 0)).sum()),
        int(((argmax == 0) & (gt == 1)).sum()),
        int(((argmax == 0) & (gt == 0)).sum()),
    ]
    assert metric.results[0]['counts_orig'] == expected
    assert int((argmax[:4] == 1).sum()) == 0


def test_ignore_pixels_are_excluded():
    # GT          prob
    # 1   255 0   0.9 0.5 0.6
    # 0   1  255  0.2 0.7 0.95   <- predicted lesion on an ignored pixel
    # Valid pixels: (0,0) TP, (0,2) FP, (1,0) TN, (1,1) TP.
    gt = [[1, 255, 0], [0, 1, 255]]
    prob = [[0.9, 0.5, 0.6], [0.2, 0.7, 0.95]]
    metric = same_size_metric(2, 3)
    metrics = run(metric, [make_sample(prob, gt)])
    check_pooled(metrics, tp=2, fp=1, fn=0, tn=1, suffix='_orig')
    assert metrics['Acc_orig'] == 75.0
    assert metrics['Sen_orig'] == 100.0


def test_all_background_image_counts_as_perfect():
    metric = same_size_metric(2, 3)
    background = make_sample(torch.full((2, 3), 0.1), [[0] * 3] * 2)
    metrics = run(metric, [background])
    # TP = FP = FN = 0, TN = 6: every 0/0 ratio is defined as 1.
    for name in ('IoU', 'DSC', 'Acc', 'Sen', 'Spe', 'IoU_orig', 'mIoU_img',
                 'mDSC_img', 'TJ'):
        assert metrics[name] == 100.0, name
    # mmseg convention: the absent lesion class is skipped, background is 1.
    assert metrics['mIoU'] == 100.0
    assert metrics['mDice'] == 100.0

    # Together with the 2x3 example: per-image mean (0.5 + 1) / 2.
    metric = same_size_metric(2, 3)
    metrics = run(metric, [
        make_sample(torch.full((2, 3), 0.1), [[0] * 3] * 2),
        make_sample(PROB_2X3, GT_2X3)
    ])
    assert metrics['mIoU_img'] == 75.0
    assert metrics['mDSC_img'] == pct((1 + 2 / 3) / 2)
    check_pooled(metrics, tp=2, fp=1, fn=1, tn=8)


def test_fully_ignored_image_is_left_out_of_per_image_means():
    metric = same_size_metric(2, 3)
    metrics = run(metric, [
        make_sample(PROB_2X3, [[255] * 3] * 2),
        make_sample(PROB_2X3, GT_2X3)
    ])
    assert metrics['mIoU_img'] == 50.0
    check_pooled(metrics, **COUNTS_2X3)


def test_thresholded_jaccard():
    # A: GT 1111, pred 1110 -> TP3 FN1: IoU 0.75 (kept).
    # B: GT 1100, pred 1111 -> TP2 FP2: IoU 0.50 (below 0.65 -> 0).
    # C: 1 x 20, GT 13 lesion, pred all -> TP13 FP7: IoU 0.65 (kept, >=).
    samples = [
        make_sample([[1., 1., 1., 0.]], [[1, 1, 1, 1]]),
        make_sample([[1., 1., 1., 1.]], [[1, 1, 0, 0]]),
        make_sample([[1.] * 20], [[1] * 13 + [0] * 7]),
    ]
    metrics = run(LesionMetric(low_res_size=(1, 4)), samples[:2])
    assert metrics['mIoU_img'] == 62.5
    assert metrics['TJ'] == 37.5

    metric = LesionMetric(low_res_size=(4, 4))
    for sample in samples:
        metric.process({}, [sample])
    metrics = metric.compute_metrics(metric.results)
    assert metrics['TJ'] == pct((0.75 + 0 + 0.65) / 3)
    assert metrics['mIoU_img'] == pct((0.75 + 0.5 + 0.65) / 3)

    metrics = run(LesionMetric(low_res_size=(4, 4), jaccard_threshold=0.8),
                  samples)
    assert metrics['TJ'] == 0.0

    # The default threshold is the ISIC challenge's 0.65: D, GT 5 lesion
    # of 8, pred all -> IoU 5/8 = 0.625, counts 0.
    samples.append(make_sample([[1.] * 8], [[1] * 5 + [0] * 3]))
    metrics = run(LesionMetric(low_res_size=(1, 4)), samples)
    assert metrics['TJ'] == pct((0.75 + 0 + 0.65 + 0) / 4)
    assert metrics['mIoU_img'] == pct((0.75 + 0.5 + 0.65 + 0.625) / 4)


def test_mmseg_two_class_miou_and_mdice():
    # 1 x 5: GT 11000, pred 10000 -> TP1 FN1 FP0 TN3.
    # lesion IoU 1/2, background IoU 3/4 -> mIoU 62.5.
    # lesion Dice 2/3, background Dice 6/7 -> mDice (2/3 + 6/7) / 2.
    metric = LesionMetric(low_res_size=(1, 5))
    metrics = run(metric, [make_sample([[1., 0., 0., 0., 0.]],
                                       [[1, 1, 0, 0, 0]])])
    assert metrics['mIoU'] == 62.5
    assert metrics['mDice'] == pct((2 / 3 + 6 / 7) / 2)
    assert metrics['IoU_orig'] == 50.0


def test_mmseg_two_class_matches_mmseg_iou_metric():
    from mmseg.evaluation import IoUMetric

    generator = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(3):
        logits = torch.randn(2, 12, 10, generator=generator)
        gt = (torch.rand(12, 10, generator=generator) > 0.6).long()
        gt[0, :3] = 255
        samples.append(make_sample(logits, gt, pred=logits.argmax(0)))
    ours = run(LesionMetric(low_res_size=(12, 10)), samples)
    reference = IoUMetric(iou_metrics=['mIoU', 'mDice'])
    reference.dataset_meta = dict(classes=('background', 'lesion'))
    reference.process({}, samples)
    theirs = reference.compute_metrics(reference.results)
    assert ours['mIoU'] == pytest.approx(theirs['mIoU'], abs=0.006)
    assert ours['mDice'] == pytest.approx(theirs['mDice'], abs=0.006)
    assert ours['Acc_orig'] == pytest.approx(theirs['aAcc'], abs=0.006)


def test_low_res_figures_8x6_to_4x4():
    # prob[r, c] = R[r] * P[c] with
    R = [1, 1, 1, 0, 0, 0, 1, 1]
    P = [1, 0, 0, 1, 0, 1]
    prob = torch.tensor(R, dtype=torch.float32)[:, None] * torch.tensor(
        P, dtype=torch.float32)[None]
    # GT: lesion block rows 0-3 x cols 0-3; ignore at (6, 0) and (7, 5).
    gt = torch.zeros(8, 6, dtype=torch.long)
    gt[:4, :4] = 1
    gt[6, 0] = 255
    gt[7, 5] = 255
    # Bilinear 8x6 -> 4x4 (align_corners=False): output row i averages input
    # rows 2i, 2i+1; output cols sample input x = 0.25, 1.75, 3.25, 4.75,
    # i.e. cols (0,1) weights (.75,.25), (1,2) (.25,.75), (3,4) (.75,.25),
    # (4,5) (.25,.75). Column factor: .75, 0, .75, .75; row factor: 1, .5,
    # 0, 1. Thresholded at 0.5 (.5 * .75 = .375 is background):
    #   pred_low = 1 0 1 1 / 0 0 0 0 / 0 0 0 0 / 1 0 1 1
    # Nearest GT picks rows 0, 2, 4, 6 and cols 0, 1, 3, 4:
    #   gt_low   = 1 1 1 0 / 1 1 1 0 / 0 0 0 0 / 255 0 0 0
    # Row 0: TP 2, FN 1, FP 1. Row 1: FN 3, TN 1. Row 2: TN 4.
    # Row 3: (ignored), TN 1, FP 2.
    low = dict(tp=2, fp=3, fn=4, tn=6)
    # Original 8x6: rows 0-2 each TP 2 (cols 0,3), FP 1 (col 5), FN 2
    # (cols 1,2), TN 1 (col 4); row 3 FN 4, TN 2; rows 4-5 TN 12;
    # row 6 FP 2 (cols 3,5), TN 3; row 7 FP 2 (cols 0,3), TN 3.
    orig = dict(tp=6, fp=7, fn=10, tn=23)

    metric = LesionMetric(low_res_size=(4, 4))
    metric.process({}, [make_sample(prob, gt)])
    assert metric.results[0]['counts_low'] == [2, 3, 4, 6]
    assert metric.results[0]['counts_orig'] == [6, 7, 10, 23]
    metrics = metric.compute_metrics(metric.results)
    check_pooled(metrics, **low)
    check_pooled(metrics, **orig, suffix='_orig')
    assert metrics['IoU'] == pct(2 / 9)
    assert metrics['IoU_orig'] == pct(6 / 23)

    # Logits resized as probabilities: a 2-channel head gives the same maps.
    eps = 1e-6
    two_channel = torch.stack([1 - prob, prob]).clamp(eps, 1 - eps).log()
    metric = LesionMetric(low_res_size=(4, 4))
    metric.process({}, [make_sample(two_channel, gt)])
    assert metric.results[0]['counts_low'] == [2, 3, 4, 6]


def test_low_res_ground_truth_takes_the_pixel_opencv_nearest_takes():
    """MMSegmentation's Resize (OpenCV's INTER_NEAREST) shrinks a 2x2 mask
    to its top-left pixel; the 8x6 example above cannot tell that from
    the pixel centres' choice (bottom-right here)."""
    gt = [[1, 0], [0, 0]]
    metric = LesionMetric(low_res_size=(1, 1))
    metric.process({}, [make_sample(torch.ones(2, 2), gt)])
    # Bilinear mean 1: lesion, on the top-left ground truth 1.
    assert metric.results[0]['counts_low'] == [1, 0, 0, 0]


def test_pooled_and_per_image_differ():
    # A: 1x4 GT 1000, pred 0100 -> TP0 FP1 FN1 TN2: IoU 0, DSC 0.
    # B: 1x4 GT 1111, pred 1110 -> TP3 FP0 FN1 TN0: IoU 3/4, DSC 6/7.
    # Pooled: TP3 FP1 FN2 TN2 -> IoU 3/6, DSC 6/9.
    metrics = run(LesionMetric(low_res_size=(1, 4)), [
        make_sample([[0., 1., 0., 0.]], [[1, 0, 0, 0]]),
        make_sample([[1., 1., 1., 0.]], [[1, 1, 1, 1]]),
    ])
    check_pooled(metrics, tp=3, fp=1, fn=2, tn=2)
    assert metrics['IoU'] == 50.0
    assert metrics['DSC'] == pct(6 / 9)
    assert metrics['mIoU_img'] == 37.5
    assert metrics['mDSC_img'] == pct((0 + 6 / 7) / 2)
    # Pooled figures are tied by DSC = 2 IoU / (1 + IoU), per-image are not.
    iou = metrics['IoU'] / 100
    assert metrics['DSC'] == pct(2 * iou / (1 + iou))
    per_image_iou = metrics['mIoU_img'] / 100
    assert not math.isclose(metrics['mDSC_img'] / 100,
                            2 * per_image_iou / (1 + per_image_iou))


def test_split_results_gather_like_single_instance():
    generator = torch.Generator().manual_seed(2)
    samples = []
    for height, width in [(9, 7), (5, 11), (8, 8), (6, 6), (13, 4)]:
        logits = torch.randn(1, height, width, generator=generator)
        gt = (torch.rand(height, width, generator=generator) > 0.5).long()
        gt[0, 0] = 255
        samples.append(make_sample(logits.sigmoid(), gt))

    single = LesionMetric(low_res_size=(4, 5))
    expected = run(single, samples)

    rank0 = LesionMetric(low_res_size=(4, 5))
    rank1 = LesionMetric(low_res_size=(4, 5))
    rank0.process({}, samples[:2])
    rank1.process({}, samples[2:])
    # What mmengine.dist.collect_results hands over: records pickled across
    # ranks, concatenated; a fresh instance computes from them alone.
    gathered = pickle.loads(pickle.dumps(rank0.results + rank1.results))
    for record in gathered:
        for counts in record.values():
            assert all(type(count) is int for count in counts)
    fresh = LesionMetric(low_res_size=(4, 5))
    assert fresh.compute_metrics(gathered) == expected

    # evaluate() (non-distributed path of BaseMetric) gives the same and
    # clears the per-rank state.
    single.process({}, samples)
    assert single.evaluate(len(samples)) == expected
    assert single.results == []


def test_built_from_registry_and_run_through_evaluator():
    from mmengine.evaluator import Evaluator
    from mmengine.registry import DefaultScope
    from mmengine.structures import PixelData

    import mmseg_dsnet.evaluation  # noqa: F401  registers LesionMetric
    from mmseg.registry import METRICS
    from mmseg.structures import SegDataSample

    metric = METRICS.build(dict(type='LesionMetric', low_res_size=(2, 3)))
    assert isinstance(metric, LesionMetric)
    assert metric.threshold == 0.5 and metric.low_res_size == (2, 3)

    with DefaultScope.overwrite_default_scope('mmseg'):
        evaluator = Evaluator(
            dict(type='LesionMetric', low_res_size=(2, 3), prefix='lesion'))
    sample = SegDataSample()
    sample.seg_logits = PixelData(data=torch.tensor(PROB_2X3)[None])
    sample.pred_sem_seg = PixelData(data=torch.ones(1, 2, 3))
    sample.gt_sem_seg = PixelData(data=torch.tensor(GT_2X3)[None])
    evaluator.process([sample])
    metrics = evaluator.evaluate(1)
    assert metrics['lesion/IoU'] == 50.0
    assert metrics['lesion/TJ'] == 0.0


@pytest.mark.parametrize('channels', [1, 2])
def test_data_samples_from_mmseg_postprocess_result(channels):
    """seg_logits as MMSegmentation 1.2.2 really fills them (1-channel maps
    already hold sigmoid probabilities, resized to the original size)."""
    from types import SimpleNamespace

    from mmseg.models.segmentors import BaseSegmentor
    from mmseg.structures import SegDataSample
    from mmseg.models.utils import resize

    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(1, channels, 4, 4, generator=generator) * 3
    gt = (torch.rand(8, 6, generator=generator) > 0.5).long()
    sample = SegDataSample(metainfo=dict(ori_shape=(8, 6)))
    segmentor = SimpleNamespace(
        align_corners=False, decode_head=SimpleNamespace(threshold=0.3))
    [sample] = BaseSegmentor.postprocess_result(segmentor, logits, [sample])
    sample = sample.to_dict()
    sample['gt_sem_seg'] = dict(data=gt[None])

    metric = LesionMetric(low_res_size=(8, 6))
    metric.process({}, [sample])

    full = resize(logits, size=(8, 6), mode='bilinear', align_corners=False)
    if channels == 1:
        pred = full[0, 0].sigmoid() > 0.5
    else:
        pred = full[0].argmax(dim=0) == 1
    expected = [
        int((pred & (gt == 1)).sum()),
        int((pred & (gt == 0)).sum()),
        int((~pred & (gt == 1)).sum()),
        int((~pred & (gt == 0)).sum()),
    ]
    assert metric.results[0]['counts_orig'] == expected


def test_output_dir_holds_the_counted_masks_and_never_replaces_one(tmp_path):
    import numpy as np
    from PIL import Image

    from mmseg_dsnet.utils.errors import UserError
    metric = same_size_metric(2, 3, output_dir=str(tmp_path / 'masks'))
    sample = dict(make_sample(PROB_2X3, GT_2X3), img_path='/data/a.jpg')
    run(metric, [sample])
    path = tmp_path / 'masks' / 'a.png'
    mask = np.asarray(Image.open(path))
    # The 0.5 pixels are not lesion, as in the counts.
    assert mask.tolist() == [[255, 0, 255], [0, 255, 0]]
    # A second image of the same stem would replace the first's mask: one
    # error line naming both images (it was a FileExistsError traceback
    # naming the second alone).
    other = dict(make_sample(PROB_2X3, GT_2X3), img_path='/other/a.png')
    with pytest.raises(UserError) as info:
        run(metric, [other])
    assert str(info.value) == (
        'LesionMetric: /data/a.jpg and /other/a.png share the stem a, so both '
        f'masks would be {path}; it is not replaced. Give each image its own '
        'file name and list it once.')
    with pytest.raises(UserError, match='/data/a.jpg was scored twice, so'):
        run(metric, [sample])
    assert np.asarray(Image.open(path)).tolist() == mask.tolist()


def test_output_dir_holds_the_figures_of_each_image(tmp_path):
    """Beside the masks, ``per_image.csv``: each image's lesion and
    predicted pixels and its IoU, DSC and sensitivity, the values the
    per-image means average (an image with no counted pixel is left out of
    them and its figures are empty)."""
    import csv
    metric = same_size_metric(2, 3, output_dir=str(tmp_path / 'masks'))
    samples = [dict(make_sample(PROB_2X3, GT_2X3), img_path='/data/a.jpg'),
               dict(make_sample(PROB_2X3, [[255] * 3] * 2),
                    img_path='/data/ignored.jpg'),
               dict(make_sample(PROB_2X3, [[1, 0, 1], [0, 1, 0]]),
                    img_path='/data/b.jpg')]
    metrics = run(metric, samples)
    with open(tmp_path / 'masks' / 'per_image.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    # a: 2 of its 3 lesion pixels found, 1 background pixel called lesion.
    assert rows == [
        dict(image='a.jpg', lesion_pixels='3', predicted_pixels='3',
             overlap_pixels='2', IoU='50.00', DSC='66.67', Sen='66.67'),
        dict(image='ignored.jpg', lesion_pixels='0', predicted_pixels='0',
             overlap_pixels='0', IoU='', DSC='', Sen=''),
        dict(image='b.jpg', lesion_pixels='3', predicted_pixels='3',
             overlap_pixels='3', IoU='100.00', DSC='100.00', Sen='100.00')]
    assert metrics['mIoU_img'] == pytest.approx(75.0)
    assert metrics['mDSC_img'] == pytest.approx((200 / 3 + 100) / 2,
                                                abs=1e-4)


def test_an_evaluation_that_counts_no_pixel_is_refused():
    """No image, or ground truth of ``ignore_index`` only, read 100 % on
    every pooled figure (every ratio 0 / 0), and so did counted pixels that
    vanish at ``low_res_size``."""
    from mmseg_dsnet.evaluation.lesion_metric import IncompleteEvaluationError
    with pytest.raises(IncompleteEvaluationError,
                       match='no image was evaluated, so every figure '
                       'would read 100 %'):
        same_size_metric(2, 3).compute_metrics([])
    with pytest.raises(IncompleteEvaluationError,
                       match=r'no pixel was counted at the original size '
                       r'over 2 images: the ground truth holds only '
                       r'ignore_index \(255\)'):
        run(same_size_metric(2, 3), [make_sample(PROB_2X3, [[255] * 3] * 2)]
            * 2)
    # One counted pixel, lost by the nearest-neighbour resize to 1x1.
    gt = [[255, 255, 255], [255, 1, 255]]
    with pytest.raises(IncompleteEvaluationError,
                       match=r'no pixel was counted at low_res_size \(1, 1\)'
                       r'.*give a larger low_res_size'):
        run(LesionMetric(low_res_size=(1, 1)), [make_sample(PROB_2X3, gt)])


def test_evaluate_refuses_results_of_fewer_images_than_the_dataset():
    """mmengine cuts the sampler's padding to ``size`` but never counts what
    is missing: a loader with drop_last=True gave the figures of 4 of 5
    images, and of none (100 %) when the batch exceeded the split."""
    from mmseg_dsnet.evaluation.lesion_metric import IncompleteEvaluationError
    metric = same_size_metric(2, 3)
    metric.process({}, [make_sample(PROB_2X3, GT_2X3)] * 4)
    with pytest.raises(IncompleteEvaluationError,
                       match='gave results for 4 of the 5 images of its '
                       'dataset, so the figures would be of part of the '
                       'split; nothing is reported.*drop_last=True'):
        metric.evaluate(5)
    assert metric.results == []
    with pytest.raises(IncompleteEvaluationError,
                       match='0 of the 5 images .* of no image at all'):
        metric.evaluate(5)
    # Padding copies beyond the dataset are cut as before.
    metric.process({}, [make_sample(PROB_2X3, GT_2X3)] * 3)
    check_pooled(metric.evaluate(2), tp=4, fp=2, fn=2, tn=4)


def _evaluate_on_rank(rank, port, records_per_rank, size, queue):
    """One gloo process: ``records_per_rank[rank]`` copies of the 2x3
    example, then ``evaluate(size)``; puts (rank, outcome) on ``queue``."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=len(records_per_rank))
    try:
        metric = same_size_metric(2, 3)
        metric.process({}, [make_sample(PROB_2X3, GT_2X3)] *
                       records_per_rank[rank])
        try:
            outcome = metric.evaluate(size)['IoU']
        except Exception as err:  # noqa: BLE001  (the outcome is checked)
            outcome = f'{type(err).__name__}: {err}'
        queue.put((rank, outcome))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize('records_per_rank,size,refused', [
    ((2, 2), 3, False),  # padded by one copy, cut back to 3
    ((1, 1), 3, True),   # a loader that dropped each rank's last batch
])
def test_a_partial_distributed_gather_is_refused_on_every_rank(
        records_per_rank, size, refused):
    """The ranks' records are counted together (all_reduce) before they
    are gathered, so all ranks stop, none waits on the others."""
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context('spawn')
    queue = ctx.SimpleQueue()
    mp.start_processes(_evaluate_on_rank,
                       args=(port, records_per_rank, size, queue),
                       nprocs=len(records_per_rank), join=True,
                       start_method='spawn')
    outcomes = dict(queue.get() for _ in records_per_rank)
    for outcome in outcomes.values():
        if refused:
            assert outcome == (
                'IncompleteEvaluationError: LesionMetric: the evaluation '
                'loop gave results for 2 of the 3 images of its dataset, '
                'so the figures would be of part of the split; nothing is '
                'reported. A val or test dataloader with drop_last=True '
                'leaves its last incomplete batch out, as does a sampler '
                'that skips images: set drop_last=False and use a sampler '
                "that visits every image (mmengine's DefaultSampler)")
        else:
            assert outcome == 50.0


def _write_masks_on_rank(rank, port, out, queue):
    """Rank 0 scores ``a.jpg``; then rank 1 scores ``a.jpg`` again (the
    padding copy of an uneven split), once with the same prediction and
    once with another; puts (rank, outcome) on ``queue``."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=2)
    try:
        metric = same_size_metric(2, 3, output_dir=out)
        sample = dict(make_sample(PROB_2X3, GT_2X3), img_path='/d/a.jpg')
        if rank == 0:
            metric.process({}, [sample])
        dist.barrier()
        outcome = []
        if rank == 1:
            metric.process({}, [sample])
            other = dict(make_sample(torch.full((2, 3), 0.9), GT_2X3),
                         img_path='/d/a.jpg')
            try:
                metric.process({}, [other])
            except Exception as err:  # noqa: BLE001  (the outcome is checked)
                outcome.append(f'{type(err).__name__}: {err}')
        outcome.append(len(metric.results))
        queue.put((rank, outcome))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_a_mask_another_process_wrote_for_its_padding_copy_is_kept(
        tmp_path):
    """``dist_test.sh ... --out`` on a split that does not divide among the
    processes: mmengine's sampler gives one process a copy of the first
    image, whose mask another process had written, so the run stopped with
    `LesionMetric: an image of another process or run and ... share the
    stem`, or not, as the processes raced. The same mask is left as it is;
    another one is still refused."""
    import socket

    import cv2
    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    out = tmp_path / 'masks'
    queue = mp.get_context('spawn').SimpleQueue()
    mp.start_processes(_write_masks_on_rank, args=(port, str(out), queue),
                       nprocs=2, join=True, start_method='spawn')
    outcomes = dict(queue.get() for _ in range(2))
    assert outcomes[0] == [1]
    assert outcomes[1] == [
        'UserError: LesionMetric: an image of another process or run and '
        '/d/a.jpg share the stem a, so both masks would be '
        f'{out}/a.png; it is not replaced. Give each image its own file '
        'name and list it once.', 1]
    assert sorted(p.name for p in out.iterdir()) == ['a.png']
    mask = cv2.imread(str(out / 'a.png'), cv2.IMREAD_UNCHANGED)
    assert mask.tolist() == [[255, 0, 255], [0, 255, 0]]


@pytest.mark.parametrize('args,message', [
    (dict(threshold=1.5), r'threshold must be a lesion probability in '
     r'\(0, 1\), got 1\.5'),
    (dict(threshold=0), r'got 0$'),
    (dict(jaccard_threshold=65), r'jaccard_threshold must be a Jaccard '
     r'index in \[0, 1\]'),
    (dict(low_res_size=(0, 0)), r'low_res_size must be \(height, width\), '
     r'two positive whole numbers, got \(0, 0\)'),
    (dict(low_res_size=(256, )), 'low_res_size'),
    (dict(lesion_index=2), 'lesion_index must be the lesion label of a '
     'binary mask, 0 or 1, got 2'),
    (dict(ignore_index=1), 'ignore_index 1 is the lesion label'),
    (dict(single_channel_input='logits'), 'single_channel_input'),
])
def test_arguments_that_give_figures_of_nothing_are_refused(args, message):
    """threshold=1.5 made no pixel lesion, jaccard_threshold=65 every TJ 0,
    lesion_index=2 every mask background (exit 0, figures written);
    low_res_size=(0, 0) failed with a RuntimeError at the first image."""
    from mmseg_dsnet.evaluation.lesion_metric import MetricArgumentError
    with pytest.raises(MetricArgumentError, match=message):
        LesionMetric(**args)
    # ignore_index 0 (score the lesion against the ignored rest) stays.
    LesionMetric(ignore_index=0, low_res_size=[8, 8], jaccard_threshold=1)


@pytest.mark.parametrize('mode', ['probability', 'logit'])
def test_an_output_holding_nan_is_refused(mode, tmp_path):
    """``NaN > threshold`` is False: NaN pixels (a diverged or overflowing
    model) were scored and written as background, an all-NaN output as
    IoU 0 and specificity 100."""
    from mmseg_dsnet.evaluation.lesion_metric import NonFiniteOutputError
    from mmseg_dsnet.utils.errors import UserError
    prob = torch.tensor(PROB_2X3)
    prob[0, 1] = float('nan')
    sample = make_sample(prob, GT_2X3)
    sample['img_path'] = '/data/a.jpg'
    metric = same_size_metric(2, 3, single_channel_input=mode,
                              output_dir=str(tmp_path / 'masks'))
    with pytest.raises(NonFiniteOutputError,
                       match=r'^LesionMetric: /data/a.jpg: the model output '
                       r'holds 1 NaN values of 6 pixels') as err:
        metric.process({}, [sample])
    assert isinstance(err.value, UserError)
    assert metric.results == [] and not list((tmp_path / 'masks').iterdir())
    # Two channels whose logits are both infinite: inf - inf is NaN.
    two = torch.zeros(2, 2, 3)
    two[:, 0, 0] = float('inf')
    with pytest.raises(NonFiniteOutputError, match='holds 1 NaN'):
        same_size_metric(2, 3).process({}, [make_sample(two, GT_2X3)])


def test_an_imperfect_figure_never_reads_100_nor_a_non_zero_one_0(caplog):
    """One false positive among 2 million background pixels is a
    specificity of 99.99995 %, which rounding to 4 decimals wrote as
    100.0 (and the logged table as 100.00): no error at all."""
    import logging

    from mmseg_dsnet.evaluation.lesion_metric import percent, percent_text
    gt = torch.zeros(1000, 2001, dtype=torch.long)
    gt[:, 2000] = 1  # 1000 lesion pixels, 2 000 000 background
    prob = gt.float()
    prob[0, 0] = 1.0  # the one false positive
    metric = same_size_metric(1000, 2001)
    with caplog.at_level(logging.INFO):
        metrics = run(metric, [make_sample(prob, gt)])
    assert metrics['Spe'] == metrics['Spe_orig'] == 99.9999
    assert metrics['Sen'] == 100.0  # perfect stays 100
    assert metrics['IoU'] == pytest.approx(100 * 1000 / 1001, abs=1e-4)
    assert metrics['Acc'] == 99.9999
    assert percent(0.9999999) == 99.9999 and percent(1.0) == 100.0
    assert percent(1e-9) == 0.0001 and percent(0.0) == 0.0
    assert percent_text(99.9999) == '>99.99'
    assert percent_text(0.0001) == '<0.01'
    assert percent_text(100.0) == '100.00' and percent_text(99.5) == '99.50'
    # error_by_position.py's IoU is the one test.py reports, rounded alike.
    from mmseg_dsnet.analysis.error_position import scored_iou
    assert scored_iou(metric)['iou_low_res'] == metrics['IoU']
    metric.results = [dict(counts_orig=[3_000_000, 1, 0, 10],
                           counts_low=[3_000_000, 1, 0, 10])]
    assert scored_iou(metric)['iou_low_res'] == 99.9999


def numpy_figures(probs, gts, low_res_size, threshold=0.5, ignore=255,
                  jaccard_threshold=0.65):
    """Every figure computed straightforwardly with numpy and OpenCV, apart
    from the metric's code: the lesion probability resized bilinearly, the
    ground truth by nearest neighbour."""
    import cv2
    import numpy as np

    def counts(prob, gt):
        valid = gt != ignore
        pred, true = (prob > threshold) & valid, (gt == 1) & valid
        return np.array([(pred & true).sum(), (pred & ~true).sum(),
                         (~pred & true & valid).sum(),
                         (~pred & ~true & valid).sum()], dtype=float)

    def ratio(num, den):
        return 1.0 if den == 0 else num / den

    def pooled(tp, fp, fn, tn):
        return dict(IoU=ratio(tp, tp + fp + fn),
                    DSC=ratio(2 * tp, 2 * tp + fp + fn),
                    Acc=ratio(tp + tn, tp + fp + fn + tn),
                    Sen=ratio(tp, tp + fn), Spe=ratio(tn, tn + fp))

    height, width = low_res_size
    orig = [counts(p, g) for p, g in zip(probs, gts)]
    low = [counts(cv2.resize(p, (width, height),
                             interpolation=cv2.INTER_LINEAR),
                  cv2.resize(g, (width, height),
                             interpolation=cv2.INTER_NEAREST))
           for p, g in zip(probs, gts)]
    figures = pooled(*sum(low))
    figures.update({f'{k}_orig': v for k, v in pooled(*sum(orig)).items()})
    ious = [ratio(c[0], c[0] + c[1] + c[2]) for c in orig if c.sum()]
    dscs = [ratio(2 * c[0], 2 * c[0] + c[1] + c[2]) for c in orig if c.sum()]
    figures['mIoU_img'] = np.mean(ious)
    figures['mDSC_img'] = np.mean(dscs)
    figures['TJ'] = np.mean([i if i >= jaccard_threshold else 0.0
                             for i in ious])
    tp, fp, fn, tn = sum(orig)
    figures['mIoU'] = (tp / (tp + fp + fn) + tn / (tn + fn + fp)) / 2
    figures['mDice'] = (2 * tp / (2 * tp + fp + fn) +
                        2 * tn / (2 * tn + fn + fp)) / 2
    return figures


@pytest.mark.parametrize('channels', [1, 2])
def test_every_figure_matches_a_plain_numpy_computation(channels):
    """Random masks with ignored pixels, an image without lesion (nor any
    predicted), one predicted empty and one wholly ignored, against
    :func:`numpy_figures`: 1-channel probabilities and 2-channel logits."""
    import numpy as np
    rng = np.random.default_rng(7)
    probs, gts, samples = [], [], []
    for index, (height, width) in enumerate(
            [(23, 31), (40, 17), (12, 12), (29, 29), (9, 50), (16, 20)]):
        gt = rng.choice([0, 1, 255], size=(height, width),
                        p=[0.5, 0.4, 0.1]).astype(np.uint8)
        prob = rng.random((height, width)).astype(np.float32)
        if index == 2:
            gt[gt == 1], prob[:] = 0, 0.2  # no lesion, none predicted
        if index == 3:
            prob[:] = 0.1  # nothing predicted on a lesion image
        if index == 5:
            gt[:] = 255  # no pixel counted: left out of the means
        probs.append(prob)
        gts.append(gt)
        if channels == 1:
            seg_logits = prob[None]
        else:
            # Logits whose softmax lesion probability is ``prob``.
            logit = np.log(prob) - np.log1p(-prob)
            seg_logits = np.stack([np.zeros_like(logit), logit])
        samples.append(make_sample(seg_logits, gt.astype(np.int64)))
    metric = LesionMetric(low_res_size=(14, 18))
    got = run(metric, samples, batch_size=4)
    expected = numpy_figures(probs, gts, (14, 18))
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(100 * value, abs=1e-4), name


def test_threshold_check_of_a_metric_scoring_label_0_with_one_channel():
    """A 1-channel head calls label 1 above its threshold T; with masks
    whose lesion is label 0 (``LesionMetric(lesion_index=0)``) the metric
    reads the lesion probability as 1 - p, so its figures describe the
    model's masks at threshold 1 - T. ``check_decision_thresholds``
    demanded T: the right config (0.58 for a 0.42 head) was refused and a
    wrong one (0.42) passed, scoring other masks than the model's."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.engine import (ThresholdMismatchError,
                                    check_decision_thresholds)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(Path(__file__).parents[1] /
                              'configs/demo/dsnet_synthetic_cpu.py'))
    # Between the probabilities of this random model (0.36 to 0.49).
    cfg.model.decode_head.threshold = 0.42
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    meta = dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32))
    with torch.no_grad():
        out, = model.predict(torch.randn(1, 3, 32, 32),
                             [SegDataSample(metainfo=meta)])
    # The model's own masks as ground truth: label 0 is the lesion.
    pred = out.pred_sem_seg.data
    assert 0 < int(pred.sum()) < pred.numel()

    def iou(threshold):
        metric = same_size_metric(32, 32, lesion_index=0,
                                  threshold=threshold)
        sample = make_sample(out.seg_logits.data, pred[0])
        return run(metric, [sample])['IoU']

    assert iou(0.58) == pytest.approx(100.)
    cfg.test_evaluator = dict(type='LesionMetric', lesion_index=0,
                              threshold=0.58)
    check_decision_thresholds(cfg, ('test_evaluator', ))
    assert iou(0.42) < 100.
    cfg.test_evaluator.threshold = 0.42
    with pytest.raises(ThresholdMismatchError,
                       match=r'set test_evaluator\.threshold=0\.58 \(or '
                       r'model\.decode_head\.threshold=0\.58\)'):
        check_decision_thresholds(cfg, ('test_evaluator', ))
    # Label 1 as lesion: the head's own threshold, as before.
    cfg.test_evaluator = dict(type='LesionMetric', threshold=0.42)
    check_decision_thresholds(cfg, ('test_evaluator', ))


def test_threshold_check_of_a_metric_given_by_its_scoped_name():
    """``type='mmseg.LesionMetric'`` builds the same metric, but the
    head/metric threshold check skipped it: a metric at 0.7 scored masks
    the 0.5 head never outputs, exit 0. Refused as the plain name is."""
    from mmengine.config import Config
    from mmseg.registry import METRICS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.engine import (ThresholdMismatchError,
                                    check_decision_thresholds)
    register_all_modules(init_default_scope=True)
    assert type(METRICS.build(dict(type='mmseg.LesionMetric'))) is \
        LesionMetric
    cfg = Config.fromfile(str(Path(__file__).parents[1] /
                              'configs/demo/dsnet_synthetic_cpu.py'))
    assert cfg.model.decode_head.threshold == 0.5
    for kind in ('LesionMetric', 'mmseg.LesionMetric'):
        cfg.test_evaluator = dict(type=kind, threshold=0.7)
        with pytest.raises(ThresholdMismatchError, match=(
                r'above probability 0\.5 but test_evaluator \(LesionMetric'
                r'\) above 0\.7')):
            check_decision_thresholds(cfg, ('test_evaluator', ))
        cfg.test_evaluator.threshold = 0.5
        check_decision_thresholds(cfg, ('test_evaluator', ))


def test_threshold_check_reads_each_evaluator_to_the_last_digit():
    """Every evaluator given (both by default) is compared with the head,
    also of a wrapped model (``model.module``); a threshold a thousandth
    away describes other masks and is refused, for label 1 (T) as for
    label 0 (1 - T)."""
    from mmengine.config import Config

    from mmseg_dsnet.engine import (ThresholdMismatchError,
                                    check_decision_thresholds)
    cfg = Config.fromfile(str(Path(__file__).parents[1] /
                              'configs/demo/dsnet_synthetic_cpu.py'))
    cfg.model.decode_head.threshold = 0.42
    cfg.val_evaluator = dict(type='LesionMetric', threshold=0.42)
    cfg.test_evaluator = dict(type='LesionMetric', threshold=0.42)
    check_decision_thresholds(cfg)
    for model in (cfg.model, dict(type='Wrapper', module=cfg.model)):
        for metric in (dict(threshold=0.421),
                       dict(lesion_index=0, threshold=0.579)):
            config = dict(cfg, model=model, test_evaluator=dict(
                type='LesionMetric', **metric))
            with pytest.raises(ThresholdMismatchError,
                               match=r'test_evaluator \(LesionMetric\) '):
                check_decision_thresholds(config)
        check_decision_thresholds(dict(cfg, model=model, test_evaluator=dict(
            type='LesionMetric', lesion_index=0, threshold=0.58)))
    # Either fix is named: the metric's 1 - T, or the head's 1 - the metric's.
    with pytest.raises(ThresholdMismatchError, match=(
            r'set test_evaluator\.threshold=0\.58 \(or '
            r'model\.decode_head\.threshold=0\.7\)$')):
        check_decision_thresholds(dict(cfg, test_evaluator=dict(
            type='LesionMetric', lesion_index=0, threshold=0.3)))


def test_a_split_without_lesion_pixels_is_named_undefined(monkeypatch):
    """Ground truth without lesion pixels gives pooled IoU 0 and
    sensitivity 100 under 0 / 0: the figures are kept and a warning says
    they are undefined; a split with lesions gets no warning."""
    import logging

    from mmseg_dsnet.evaluation import lesion_metric
    logged = []
    monkeypatch.setattr(lesion_metric, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw)))
    empty = [[0, 0, 0], [0, 0, 0]]
    metrics = run(same_size_metric(2, 3), [make_sample(PROB_2X3, empty)] * 3)
    assert metrics['IoU'] == 0.0 and metrics['Sen'] == 100.0
    warnings = [msg for msg, kw in logged
                if kw.get('level') == logging.WARNING]
    assert warnings == [
        'LesionMetric: the ground truth of the 3 scored images holds no '
        'lesion pixel at the original size; there the pooled IoU, DSC and '
        'sensitivity are undefined (0 / 0): IoU and DSC read 0 when any '
        'pixel is called lesion and 100 when none is, and sensitivity '
        'reads 100. Score a split whose masks hold lesions']
    # A lesion of one pixel that nearest-neighbour resizing drops.
    logged.clear()
    dot = torch.zeros(4, 4, dtype=torch.long)
    dot[1, 1] = 1
    run(LesionMetric(low_res_size=(2, 2)),
        [make_sample(torch.zeros(4, 4), dot)])
    assert [msg for msg, kw in logged if kw.get('level')] == [
        'LesionMetric: the ground truth of the 1 scored image holds no '
        'lesion pixel at low_res_size 2x2, where the masks are resized by '
        'nearest neighbour; there the pooled IoU, DSC and sensitivity are '
        'undefined (0 / 0): IoU and DSC read 0 when any pixel is called '
        'lesion and 100 when none is, and sensitivity reads 100. Score a '
        'split whose masks hold lesions']
    logged.clear()
    run(same_size_metric(2, 3), [make_sample(PROB_2X3, GT_2X3)])
    assert [msg for msg, kw in logged if kw.get('level')] == []
