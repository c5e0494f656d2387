"""One checkpoint, one image: the same mask whichever tool makes it
(``tools/test.py --out``, ``tools/infer.py``, the Python API)."""
import numpy as np
import pytest
from conftest import REPO, run_tool_in_process
from PIL import Image

CONFIG = str(REPO / 'configs/dsnet/dsnet_isic2017.py')
RELEASED = str(REPO / 'checkpoints/dsnet_isic2017_256px.pth')


@pytest.fixture(scope='module')
def odd_sized_set(tmp_path_factory):
    """A converted synthetic ISIC 2017 set of 500x375 images (not the
    model's 256x256, so every tool resizes its logits back) and the ids of
    its official test split (4 images)."""
    from mmseg_dsnet.datasets.converters.isic import convert
    from mmseg_dsnet.datasets.converters.synthetic_isic import generate
    base = tmp_path_factory.mktemp('odd_sized')
    generate(str(base / 'raw'), year=2017, num_train=2, num_val=1,
             num_test=4, size=(500, 375), seed=0, mark_synthetic=False)
    root = base / 'isic2017'
    convert(str(base / 'raw'), str(root), year=2017, seed=0)
    ids = (root / 'splits' / 'official_test.txt').read_text().split()
    return root, ids


def tool_masks(root, ids, out, *flags):
    """The masks of ``tools/test.py --out`` and ``tools/infer.py`` (with
    ``flags``) of the released model: image id -> (test's, infer's)."""
    # The synthetic set's ids are ISIC ids, some of them in the released
    # model's training split.
    run_tool_in_process(
        'tools/test.py', CONFIG, RELEASED, *flags, '--allow-training-images',
        '--work-dir',
        out / 'work', '--out', out / 'test_masks', '--cfg-options',
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.ann_file=splits/official_test.txt',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', check=True)
    run_tool_in_process(
        'tools/infer.py', CONFIG, RELEASED,
        *[root / 'images' / f'{i}.jpg' for i in ids], *flags, '--out-dir',
        out / 'infer', '--no-progress', '--no-overlay', check=True)
    return {i: (np.array(Image.open(out / 'test_masks' / f'{i}.png')),
                np.array(Image.open(out / 'infer' / 'masks' / f'{i}.png')))
            for i in ids}


def test_tta_masks_of_test_and_infer_are_the_same(odd_sized_set, tmp_path):
    """``--tta``: infer.py merged the flipped views at the model size and
    resized the mean; test.py resizes each view and merges at the image's
    size (LesionTTAModel). A few rim pixels differed (7 of 750000 here);
    now both merge with ``mean_view_probability`` at the image's size."""
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.apis.lesion_inferencer import LesionInferencer
    from mmseg_dsnet.apis.masks import resize_to_mask
    from mmseg_dsnet.deploy.deployable import to_model_input
    from mmseg_dsnet.image_io import read_image
    from mmseg_dsnet.models.utils.lesion_logit import decision_map
    root, ids = odd_sized_set
    masks = tool_masks(root, ids, tmp_path, '--tta')
    inferencer = LesionInferencer(TorchBackend(CONFIG, RELEASED), flips=True)
    merged_small = 0
    for name, (tested, inferred) in masks.items():
        assert tested.shape == (375, 500) and 0 < (tested > 0).mean() < 1
        assert np.array_equal(tested, inferred), name
        rgb = read_image(str(root / 'images' / f'{name}.jpg')).rgb
        api, = inferencer.predict([rgb])
        assert np.array_equal(api * 255, tested), name
        # The former way: the mean at the model size, resized.
        logits = inferencer.run(to_model_input(rgb, (256, 256))[None])[0]
        former = resize_to_mask(decision_map(logits, 0.5), rgb.shape[:2])
        merged_small += int((former * 255 != tested).sum())
    assert merged_small > 0  # the test tells the two ways apart


def test_plain_masks_of_test_and_infer_are_the_same(odd_sized_set,
                                                    tmp_path):
    for name, (tested, inferred) in tool_masks(*odd_sized_set,
                                               tmp_path).items():
        assert np.array_equal(tested, inferred), name


@pytest.mark.parametrize('ext', ['.png', '.tif'])
def test_a_16_bit_gray_image_is_read_as_the_test_pipeline_reads_it(
        tmp_path, ext):
    """infer.py (``read_image``) scaled 16-bit grayscale by rounding
    x / 257; mmcv's LoadImageFromFile (tools/test.py, training) keeps the
    high byte: a quarter of the pixels differed by one level, and 410 mask
    pixels of a 777x583 photo."""
    import cv2
    import mmcv

    from mmseg_dsnet.image_io import read_image
    values = np.random.default_rng(0).integers(0, 65536, (40, 50),
                                               dtype=np.uint16)
    path = str(tmp_path / f'gray16{ext}')
    cv2.imwrite(path, values)
    loaded = mmcv.imfrombytes(open(path, 'rb').read(), flag='color')
    got = read_image(path)
    assert np.array_equal(got.rgb, loaded[..., ::-1])
    assert got.notes == ['16-bit image (I;16) scaled to 8 bits',
                         'grayscale image replicated to 3 channels']


OWN_TTA = '''
_base_ = '{base}'
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(256, 256), keep_ratio=False),
         dict(type='Resize', scale=({side}, {side}), keep_ratio=False)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='vertical')],
        [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])
]
'''


def test_infer_tta_refuses_a_config_with_its_own_tta_pipeline(tmp_path):
    """test.py --tta runs a config's own tta_pipeline (here two scales and
    the flips); infer.py --tta averaged the three flips anyway: its masks
    differed from those test.py scored (7000 pixels of three photos),
    exit 0."""
    from mmseg_dsnet.apis.inference_backends import TorchBackend
    from mmseg_dsnet.apis.lesion_inferencer import LesionInferencer
    from mmseg_dsnet.utils.errors import UserError
    own = tmp_path / 'own_tta.py'
    own.write_text(OWN_TTA.format(base=CONFIG, side=320))
    photo = tmp_path / 'photo.png'
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(photo)
    out = tmp_path / 'out'
    run = run_tool_in_process('tools/infer.py', own, RELEASED, photo,
                              '--tta', '--out-dir', out, '--no-progress')
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f'ERROR: --tta: {own} sets its own tta_pipeline, which tools/test.py '
        '--tta scores, while this averages the image and its horizontal '
        'and vertical flips at the test size only: the masks would not be '
        'those of its test-time augmented figures; leave out test-time '
        'augmentation, or remove tta_pipeline from the config (test.py '
        '--tta then averages the same flips)')
    assert not out.exists()
    backend = TorchBackend(str(own), RELEASED)
    with pytest.raises(UserError, match=r'^LesionInferencer\(flips=True\): '
                       '.* sets its own tta_pipeline'):
        LesionInferencer(backend, flips=True)
    LesionInferencer(backend)  # without flips: the config's plain test
    # A tta_pipeline that is the flips of the test pipeline is the same.
    flips_only = tmp_path / 'flips_tta.py'
    flips_only.write_text(OWN_TTA.format(base=CONFIG, side=256).replace(
        "[dict(type='Resize', scale=(256, 256), keep_ratio=False),\n"
        "         dict(type='Resize', scale=(256, 256), keep_ratio=False)]",
        "[dict(type='Resize', scale=(256, 256), keep_ratio=False)]"))
    run_tool_in_process('tools/infer.py', flips_only, RELEASED, photo,
                        '--tta', '--out-dir', out, '--no-progress',
                        check=True)


STEP_CONFIG = '''
_base_ = '{base}'
test_pipeline = [
    dict(type='LoadImageFromFile'{load}),
    dict(type='Resize', scale=(256, 256), keep_ratio=False{resize}),
    {extra}
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
'''


@pytest.mark.parametrize('load,resize,extra,named', [
    ('', '', "dict(type='AdjustGamma', gamma=1.6),", 'AdjustGamma'),
    ('', ", interpolation='bicubic'", '', "Resize(interpolation='bicubic')"),
    (', to_float32=True', '', '', 'LoadImageFromFile(to_float32=True)'),
])
def test_a_test_step_the_deployed_network_leaves_out_is_refused(
        tmp_path, load, resize, extra, named):
    """test.py applies every step of the test pipeline; infer.py (both
    backends) and the ONNX export only load and resize (to 8 bits): with an
    ``AdjustGamma`` step 24726 mask pixels of three photos differed from
    test.py's (720 with ``to_float32=True``: a resize not rounded to 8
    bits), exit 0 (the export's parity check passed)."""
    config = tmp_path / 'step.py'
    config.write_text(STEP_CONFIG.format(base=CONFIG, load=load,
                                         resize=resize, extra=extra))
    photo = tmp_path / 'photo.png'
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(photo)
    want = (f'ERROR: config {config} is tested otherwise than the deployed '
            'network (the ONNX export, infer.py) runs it: its test pipeline '
            f'has {named}, which the deployed network does not apply (it '
            'reads the image as LoadImageFromFile does and resizes it '
            'bilinearly to the Resize scale, nothing else); the masks would '
            'differ from those tools/test.py scores for it; give a config '
            'with a test pipeline of LoadImageFromFile, Resize, '
            "LoadAnnotations and PackSegInputs only, keep_ratio=False and "
            "test_cfg mode='whole' (as configs/_base_/datasets/"
            'isic_256x256.py and our model configs)')
    for backend in ('pytorch', 'onnxruntime'):
        run = run_tool_in_process('tools/infer.py', config, RELEASED, photo,
                                  '--out-dir', tmp_path / 'out',
                                  '--backend', backend, '--no-progress')
        assert run.returncode == 2
        assert run.stderr.strip().splitlines()[-1] == want
        assert not (tmp_path / 'out').exists()
    run = run_tool_in_process('tools/deployment/export_onnx.py', config,
                              RELEASED, tmp_path / 'model.onnx')
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == want
    assert not (tmp_path / 'model.onnx').exists()


def test_shipped_test_pipelines_are_followed_by_the_deployed_network():
    from mmengine.config import Config

    from mmseg_dsnet.deploy.deployable import (loader_pipeline,
                                               pipeline_steps_not_followed)
    files = sorted((REPO / 'configs').glob('*/*.py'))
    assert len(files) > 20
    for path in files:
        if path.parent.name == '_base_' or path.parent.name == 'datasets':
            continue
        cfg = Config.fromfile(str(path))
        for pipeline in (loader_pipeline(cfg), cfg.get('test_pipeline')):
            assert pipeline_steps_not_followed(pipeline or []) == [], path


def test_the_onnx_file_keeps_the_threshold_to_the_last_digit(tmp_path):
    """export_onnx wrote the decode head's threshold with ``:g`` (six
    digits): 0.123456789 became 0.123457, and infer.py cut the ONNX
    model's masks at another threshold than the PyTorch backend's."""
    from mmseg_dsnet.apis.inference_backends import (OnnxRuntimeBackend,
                                                     TorchBackend)
    from mmseg_dsnet.deploy.onnx_export import export_onnx
    config = tmp_path / 'threshold.py'
    config.write_text(f"_base_ = '{CONFIG}'\n"
                      'model = dict(decode_head=dict(threshold=0.123456789))\n')
    onnx_file = str(tmp_path / 'model.onnx')
    export_onnx(str(config), RELEASED, onnx_file)
    assert OnnxRuntimeBackend(onnx_file).threshold == 0.123456789 == \
        TorchBackend(str(config), RELEASED).threshold


@pytest.mark.parametrize('channels', [1, 2])
def test_views_to_mask_is_the_merge_of_lesion_tta_model(channels):
    """infer.py's masks of flipped views (``views_to_mask``) are those of
    LesionTTAModel fed the views as mmseg's segmentor leaves them: each
    resized to the image (bilinear), 1 channel as its sigmoid."""
    import torch
    import torch.nn.functional as F
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmseg_dsnet.apis.masks import views_to_mask
    from mmseg_dsnet.models.segmentors import LesionTTAModel
    rng = np.random.default_rng(channels)
    views = [rng.normal(0, 4, (channels, 16, 16)).astype(np.float32)
             for _ in range(3)]
    size = (37, 53)
    samples = []
    for view in views:
        resized = F.interpolate(torch.from_numpy(view)[None], size=size,
                                mode='bilinear', align_corners=False)[0]
        sample = SegDataSample()
        sample.seg_logits = PixelData(
            data=resized.sigmoid() if channels == 1 else resized)
        samples.append(sample)
    tta = LesionTTAModel.__new__(LesionTTAModel)
    torch.nn.Module.__init__(tta)
    tta.module = torch.nn.Module()
    tta.module.decode_head = torch.nn.Module()
    tta.module.decode_head.threshold = 0.5
    merged, = tta.merge_preds([samples])
    want = merged.pred_sem_seg.data[0].numpy()
    got = views_to_mask(views, size, 0.5, chunk_rows=5)
    assert 0 < want.mean() < 1
    assert np.array_equal(got, want)
