"""The shipped configs: DSNet's budget through get_flops.py, every DSNet
variant (protocols, ablations) builds, trains a step and has its deploy
form, and every config, metafile entry and published record does what its
name says."""
import glob
import json
import os.path as osp
import re

import pytest
import torch
from conftest import REPO, load_tool, write_tiny_config

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
    # count_deployed=False counts the model as trained only (one trace).
    alone = get_flops(str(REPO / 'configs/dsnet/dsnet_isic2018.py'),
                      (256, 256), count_deployed=False)
    assert 'deploy' not in alone
    assert (alone['params'], alone['flops']) == (result['params'],
                                                 result['flops'])


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


# Every shipped config but the _base_ parts, and what its name promises.
ALL_CONFIGS = sorted(
    p for p in glob.glob(str(REPO / 'configs/**/*.py'), recursive=True)
    if '/_base_/' not in p)
DEFAULT = str(REPO / 'configs/dsnet/dsnet_isic2017.py')


def _rel(path):
    return str(path).split(str(REPO) + '/', 1)[-1]


def _cfg(path):
    from mmengine.config import Config
    return Config.fromfile(path)


def _resize_scales(pipeline):
    return [tuple(t['scale']) for t in pipeline if t['type'] == 'Resize']


def _differences(a, b):
    from mmseg_dsnet.utils.config_diff import config_differences
    return sorted(config_differences(a, b, 'model'))


@pytest.mark.parametrize('config', ALL_CONFIGS, ids=_rel)
def test_every_shipped_config_does_what_its_name_says(config):
    """A config whose name says one year, protocol or size and that loads
    another would train and score the wrong thing with no error: the
    dataset year in the name is its data_root and dataset type, the
    protocol its split files, and the input size is the same in the train
    and test resize, the data preprocessor and the metric's low-res size."""
    cfg = _cfg(config)
    name = osp.basename(config)
    if name == 'dsnet_synthetic_cpu.py':
        year, root = '2018', 'data/synthetic_isic2018'
    else:
        year = re.search(r'isic(2016|2017|2018)', name).group(1)
        root = f'data/isic{year}'
    # design/ configs train on the design-train split and validate and test
    # on the design hold-out, also when run directly (tools/train.py): one
    # validating on lightweight_test chose its best checkpoint, and a user
    # comparing designs by it their design, on the test images.
    protocol = 'official' if name.endswith('_official.py') else (
        'design' if '/design/' in config else 'lightweight')
    splits = dict(
        official=('official_train', 'official_val', 'official_test'),
        lightweight=('lightweight_train', 'lightweight_test',
                     'lightweight_test'),
        design=('lightweight_design_train', 'lightweight_design_val',
                'lightweight_design_val'))[protocol]
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for loader, split in zip(loaders, splits):
        dataset = cfg[loader]['dataset']
        assert dataset['type'] == f'ISIC{year}Dataset', (loader, dataset)
        assert dataset['data_root'] == root, (loader, dataset)
        assert dataset['ann_file'] == f'splits/{split}.txt', (loader, dataset)
        # The base's top-level names, which a dumped config shows, say the
        # same (an official run's dump said val_split lightweight_test).
        assert cfg[loader.replace('dataloader', 'split')] == \
            dataset['ann_file'], loader
    assert (cfg.dataset_type, cfg.data_root) == (f'ISIC{year}Dataset', root)
    size = tuple(cfg.crop_size)
    expected_size = (128, 128) if name == 'dsnet_synthetic_cpu.py' else (
        256, 256)
    assert size == expected_size
    for loader in loaders:
        assert _resize_scales(cfg[loader]['dataset']['pipeline']) == [size]
    # Each scores the images as they are (also under tools/test.py --tta),
    # and trains on random views of them.
    from mmseg_dsnet.datasets.flip_tta_pipeline import flip_tta_pipeline
    from mmseg_dsnet.datasets.random_transforms import random_step
    test = cfg.test_dataloader.dataset.pipeline
    for pipeline in (cfg.val_dataloader.dataset.pipeline, test,
                     cfg.get('tta_pipeline') or flip_tta_pipeline(test)):
        assert random_step(pipeline) == -1, pipeline
    assert random_step(cfg.train_dataloader.dataset.pipeline) >= 0
    assert tuple(cfg.model.data_preprocessor['size']) == size
    head = cfg.model.decode_head
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator['type'] == 'LesionMetric'
        assert tuple(evaluator.get('low_res_size', (256, 256))) == size
        # The figures are those of the masks the model outputs.
        if head.get('out_channels') == 1:
            assert evaluator.get('threshold', 0.5) == head['threshold']
    if name != 'dsnet_synthetic_cpu.py':
        # 'the literature's schedule' in every protocol config's header.
        assert cfg.train_cfg['max_epochs'] == 300
        scheduler, = cfg.param_scheduler
        assert (scheduler['T_max'], scheduler['end']) == (50, 300)
        assert cfg.optim_wrapper['optimizer']['lr'] == 1e-3
        assert cfg.train_dataloader['batch_size'] == 8
    for part in ('backbone', 'decode_head'):
        # A trained-form config: deploy configs are written by
        # tools/deployment/reparameterize.py, none is shipped.
        assert not cfg.model[part].get('deploy', False), part


ABLATIONS = {
    # config: the only model paths its name allows to differ from DSNet's.
    'dsnet_isic2017_no-gate.py': ['model.decode_head.use_gate'],
    'dsnet_isic2017_no-deep-supervision.py': [
        'model.decode_head.deep_supervision'],
    'dsnet_isic2017_bce-dice.py': ['model.decode_head.loss_decode'],
    'dsnet_isic2017_vanilla-conv.py': ['model.backbone.conv_type',
                                       'model.decode_head.conv_type'],
}


@pytest.mark.parametrize('name', sorted(ABLATIONS))
def test_each_ablation_changes_only_the_part_its_name_says(name):
    """An ablation that also changed another part would report that
    part's effect under its name (the ablation table's rows)."""
    config = str(REPO / 'configs/dsnet' / name)
    cfg, default = _cfg(config).to_dict(), _cfg(DEFAULT).to_dict()
    assert _differences(cfg['model'], default['model']) == ABLATIONS[name]
    for key in set(cfg) | set(default):
        if key not in ('model', 'filename'):
            assert cfg.get(key) == default.get(key), key
    if name == 'dsnet_isic2017_bce-dice.py':
        losses = [loss['type'] for loss in cfg['model']['decode_head'][
            'loss_decode']]
        assert losses == ['CrossEntropyLoss', 'BinaryDiceLoss']


def test_year_and_protocol_siblings_build_the_same_model():
    """dsnet_isic2018.py, *_official.py ... differ from their ISIC 2017
    lightweight sibling in the data only, and the design study's default
    (design-deeper-eighth-pooled-downsampling, the fortieth round's) is
    dsnet_isic2017.py itself."""
    families = {}
    for config in ALL_CONFIGS:
        name = osp.basename(config)
        if '/design/' in config or 'synthetic' in name:
            continue
        stem = re.sub(r'_isic201[678](_official)?\.py$', '', name)
        if stem != name:
            families.setdefault((osp.dirname(config), stem), []).append(
                config)
    # dsnet, dsnet-v1, egeunet, malunet, unet, segformer
    assert len(families) == 6
    for configs in families.values():
        models = [_cfg(c).to_dict()['model'] for c in configs]
        for config, model in zip(configs[1:], models[1:]):
            assert _differences(model, models[0]) == [], config
    design = _cfg(str(REPO / 'configs/dsnet/design/dsnet-design-deeper-'
                      'eighth-pooled-downsampling_isic2017.py')).to_dict()
    default = _cfg(DEFAULT).to_dict()
    # All but the splits: design configs read the design hold-out.
    differences = [d for key in sorted(set(design) | set(default))
                   for d in _differences_at(design.get(key),
                                            default.get(key), key)]
    assert sorted(differences) == sorted(DESIGN_SPLITS)


def test_published_records_were_trained_with_the_shipped_config():
    """Each results/runs record names its config and stores the model it
    trained: the config must still build that model, or rerunning the
    documented command reproduces another one."""
    records = sorted((REPO / 'results' / 'runs').glob('*.json'))
    assert records
    checked = 0
    for path in records:
        record = json.loads(path.read_text())
        assert (REPO / record['config']).is_file(), path.name
        cfg = _cfg(str(REPO / record['config']))
        name = osp.basename(record['config'])
        assert record['dataset_type'] == cfg.train_dataloader.dataset.type
        assert record['protocol'] == (
            'official' if name.endswith('_official.py') else 'lightweight')
        assert record['train_split'] == cfg.train_dataloader.dataset.ann_file
        if 'model_config' not in record:
            continue  # older records: no stored model
        model = cfg.to_dict()['model']
        # The input size is the schedule's (cpu-30ep trains at 128x128).
        model['data_preprocessor'].pop('size')
        stored = dict(record['model_config'])
        stored['data_preprocessor'] = {
            k: v for k, v in stored['data_preprocessor'].items()
            if k != 'size'}
        assert json.loads(json.dumps(model)) == stored, path.name
        checked += 1
    assert checked >= 10


def test_metafile_entries_point_at_their_configs_and_weights():
    """Every metafile entry's config exists and trains on the data its
    entry says, its weights are the listed file, and its figures are the
    run's it was published from."""
    import hashlib

    import yaml
    meta = yaml.safe_load(
        (REPO / 'configs/dsnet/metafile.yaml').read_text())
    names = set()
    for entry in meta['Models']:
        assert entry['Name'] not in names
        names.add(entry['Name'])
        assert entry['In Collection'] == 'DSNet'
        cfg = _cfg(str(REPO / entry['Config']))
        dataset = cfg.train_dataloader.dataset
        data = entry['Metadata']['Training Data']
        year = re.search(r'ISIC (201[678])', data).group(1)
        assert dataset.type == f'ISIC{year}Dataset', entry['Name']
        protocol = re.search(r'\((\w+) protocol', data).group(1)
        assert dataset.ann_file == f'splits/{protocol}_train.txt'
        size = tuple(cfg.crop_size)
        assert entry['Metadata']['crop size'] == f'({size[0]},{size[1]})'
        if 'Weights' not in entry:
            # A config entry: named after its config, its schedule.
            assert entry['Name'] == osp.basename(entry['Config'])[:-3]
            assert entry['Metadata']['lr schd'] == (
                f"{cfg.train_cfg['max_epochs']} epochs")
            assert entry['Metadata']['Batch Size'] == (
                cfg.train_dataloader['batch_size'])
            assert 'Results' not in entry
            continue
        weights = REPO / entry['Weights']
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == (
            entry['SHA256'])
        records = [json.loads(p.read_text()) for p in
                   (REPO / 'results' / 'runs').glob('*.json')]
        record, = [r for r in records if r['config'] == entry['Config']
                   and r['schedule_tag'] == 'cpu-15ep-256']
        assert f"{record['epochs']} epochs" in entry['Metadata']['lr schd']
        assert f"all {record['train_images']} training images" in data
        assert entry['Metadata']['Batch Size'] == record['batch_size']
        result, = entry['Results']
        assert f"{record['test_images']} images" in result['Dataset']
        assert result['Metrics'] == dict(
            IoU=round(record['metrics']['IoU'], 2),
            DSC=round(record['metrics']['DSC'], 2))
    assert names >= {osp.basename(p)[:-3] for p in
                     glob.glob(str(REPO / 'configs/dsnet/*.py'))}


def test_model_card_config_table_names_shipped_configs():
    """The model card's config table links existing configs, with the
    protocol each one loads."""
    text = (REPO / 'configs/dsnet/README.md').read_text()
    table = text.split('## Configs', 1)[1].split('\n\n', 2)[1]
    rows = [r for r in table.splitlines() if r.startswith('| [')]
    assert len(rows) >= 9
    linked = set()
    for row in rows:
        protocol = row.split('|')[2].strip()
        for link in re.findall(r'\]\(([^)]+\.py)\)', row):
            linked.add(link)
            cfg = _cfg(str(REPO / 'configs/dsnet' / link))
            split = cfg.train_dataloader.dataset.ann_file
            assert split == f"splits/{protocol.split()[0]}_train.txt", row
    assert linked == {osp.basename(p) for p in
                      glob.glob(str(REPO / 'configs/dsnet/*.py'))}


@pytest.mark.parametrize(
    'config', DSNET_CONFIGS, ids=lambda p: p.rsplit('/', 1)[-1])
def test_deploy_form_of_every_dsnet_config_is_its_reparameterised_model(
        config):
    """``deploy=True`` (what reparameterize.py writes) builds exactly the
    folded form of the config: same weights, same logits."""
    import mmseg_dsnet  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from mmseg_dsnet.deploy.deploy_checkpoint import deploy_config
    from mmseg_dsnet.models.utils import reparameterize_model
    register_all_modules()
    cfg = _cfg(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    inputs = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(inputs, mode='tensor')
        folded = reparameterize_model(model)
        plain = MODELS.build(deploy_config(cfg).model).eval()
        plain.load_state_dict(folded.state_dict(), strict=True)
        got = plain(inputs, mode='tensor')
    assert torch.allclose(got, expected, atol=1e-4)


# What a design config may change in the data and schedule besides its
# model (its name says so); every other config has DSNet's.
DESIGN_RUN_CHANGES = {
    'dsnet-design-deeper-eighth-photometric_isic2017.py': [
        'train_dataloader.dataset.pipeline', 'train_pipeline'],
    'dsnet-design-deeper-eighth-zoom_isic2017.py': [
        'train_dataloader.dataset.pipeline', 'train_pipeline'],
    'dsnet-design-deeper-eighth-ema_isic2017.py': ['custom_hooks'],
    'dsnet-design-deeper-eighth-fine-labels_isic2017.py': [
        'train_dataloader.dataset.pipeline', 'train_pipeline'],
}
# Every design config reads the design splits in place of DSNet's (checked
# in test_every_shipped_config_does_what_its_name_says).
DESIGN_SPLITS = [key for loader in ('train', 'val', 'test') for key in (
    f'{loader}_dataloader.dataset.ann_file', f'{loader}_split')]
# Top-level helpers that only feed ``model`` or a pipeline that is compared
# itself (mmseg's bases and the design candidates define some).
MODEL_HELPERS = ('model', 'filename', 'data_preprocessor', 'norm_cfg',
                 'act_cfg', 'widths', 'group_norm', 'gelu', 'hswish', 'zoom',
                 'colour_augmentation')


def _dsnet_sibling(config):
    """The DSNet config of the same year and protocol."""
    name = osp.basename(config)
    year = re.search(r'_isic(201[678])', name).group(1)
    official = '_official' if name.endswith('_official.py') else ''
    return str(REPO / 'configs/dsnet' / f'dsnet_isic{year}{official}.py')


@pytest.mark.parametrize(
    'config', [c for c in ALL_CONFIGS if 'synthetic' not in c], ids=_rel)
def test_every_model_trains_on_dsnets_data_and_schedule(config):
    """The leaderboard and the ablation table compare models trained the
    same way: a baseline, anchor or design candidate whose data, pipeline,
    schedule, hooks or seed differed from DSNet's would put that difference
    into its row with no error. Each config equals the DSNet config of its
    year and protocol in everything but the model (design candidates also
    in what their names add), and that schedule is the one README.md and
    the model card state: the literature's flips and rotation, AdamW lr
    1e-3 and weight decay 1e-2, cosine with T_max 50 epochs down to 1e-5,
    batch 8, 300 epochs, seed 0."""
    cfg = _cfg(config).to_dict()
    sibling = _cfg(_dsnet_sibling(config)).to_dict()
    differences = [
        d for key in sorted(set(cfg) | set(sibling))
        if key not in MODEL_HELPERS
        for d in _differences_at(cfg.get(key), sibling.get(key), key)]
    allowed = DESIGN_RUN_CHANGES.get(osp.basename(config), []) + (
        DESIGN_SPLITS if '/design/' in config else [])
    changed = sorted({a for d in differences for a in allowed
                      if d == a or d.startswith((a + '.', a + '['))})
    assert changed == sorted(allowed), differences
    assert all(d.startswith(tuple(allowed)) for d in differences), (
        differences)

    assert cfg['optim_wrapper'] == dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                       weight_decay=1e-2))
    scheduler, = cfg['param_scheduler']
    assert scheduler == dict(type='CosineAnnealingLR', T_max=50,
                             eta_min=1e-5, by_epoch=True, begin=0, end=300)
    assert cfg['train_cfg']['type'] == 'EpochBasedTrainLoop'
    assert cfg['train_cfg']['max_epochs'] == 300
    assert cfg['train_dataloader']['batch_size'] == 8
    assert cfg['randomness']['seed'] == 0
    augment = [(t['type'], t.get('direction'), t.get('prob'),
                t.get('degree'), t.get('keep_ratio'))
               for t in cfg['train_dataloader']['dataset']['pipeline']
               if t['type'] in ('Resize', 'RandomFlip', 'RandomRotate')]
    assert augment == [('Resize', None, None, None, False),
                       ('RandomFlip', 'horizontal', 0.5, None, None),
                       ('RandomFlip', 'vertical', 0.5, None, None),
                       ('RandomRotate', None, 0.5, 180, None)]


def _differences_at(given, other, path):
    from mmseg_dsnet.utils.config_diff import config_differences
    return list(config_differences(given, other, path))


def test_real_data_check_of_a_design_config_reads_the_split_it_names(
        tmp_path):
    """A design config reads the design splits itself; ``check_real_data.py
    --split test`` of one must still train on lightweight_train and judge
    on lightweight_test (it would otherwise score the design hold-out in a
    run recorded as a test-split one), and ``--split design`` the design
    splits."""
    from mmseg_dsnet.leaderboard.real_data_check import short_schedule_cfg
    config = 'configs/dsnet/design/dsnet-design-e_isic2017.py'
    for split, expected in (
            ('test', ('lightweight_train', 'lightweight_test')),
            ('design', ('lightweight_design_train',
                        'lightweight_design_val'))):
        cfg = short_schedule_cfg(config, str(tmp_path), str(tmp_path / 'w'),
                                 1, None, None, 0, split=split)
        train, val = (f'splits/{name}.txt' for name in expected)
        assert [cfg[f'{loader}_dataloader'].dataset.ann_file
                for loader in ('train', 'val', 'test')] == [train, val, val]
    # A config of the literature's split is left as it is.
    cfg = short_schedule_cfg('configs/dsnet/dsnet_isic2017_official.py',
                             str(tmp_path), str(tmp_path / 'w'), 1, None,
                             None, 0, split='test')
    assert cfg.test_dataloader.dataset.ann_file == 'splits/official_test.txt'


def test_real_data_check_finds_the_design_splits_by_path_and_images(
        tiny_isic, tmp_path):
    """``check_real_data.py --split test`` of a config that names the
    design-train split as ``./splits/...``, or tests on a copy of the
    design hold-out under another name, was taken for a config of the
    literature's split: the run scored the design hold-out and was
    recorded as a test-split one."""
    from mmseg_dsnet.leaderboard.real_data_check import (TEST_SPLITS,
                                                         short_schedule_cfg)
    base = write_tiny_config(tmp_path / 'tiny.py', tiny_isic)
    copy = tmp_path / 'final_check.txt'
    copy.write_text(
        (tiny_isic / 'splits' / 'lightweight_design_val.txt').read_text())
    for name, train, test in (
            ('dotted', './splits/lightweight_design_train.txt',
             './splits/lightweight_design_val.txt'),
            ('copied', 'splits/lightweight_train.txt', str(copy))):
        config = tmp_path / f'{name}.py'
        config.write_text(
            f"_base_ = ['{base}']\n"
            f"train_dataloader = dict(dataset=dict(ann_file='{train}'))\n"
            f"val_dataloader = dict(dataset=dict(ann_file='{test}'))\n"
            f"test_dataloader = dict(dataset=dict(ann_file='{test}'))\n")
        cfg = short_schedule_cfg(str(config), str(tiny_isic),
                                 str(tmp_path / 'w'), 1, None, None, 0)
        assert [cfg[f'{loader}_dataloader'].dataset.ann_file
                for loader in ('train', 'val', 'test')] == [
                    TEST_SPLITS[0], TEST_SPLITS[1], TEST_SPLITS[1]], name
