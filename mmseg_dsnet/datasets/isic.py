"""ISIC skin-lesion segmentation datasets (Task 1 of the ISIC 2016, 2017 and
2018 challenges) in the layout written by
``tools/dataset_converters/isic.py``::

    data_root/images/<id>.jpg
    data_root/masks/<id>.png          # uint8, 0 = background, 1 = lesion
    data_root/splits/<protocol>_<split>.txt
"""
import logging
import os.path as osp
from collections import Counter

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..utils.errors import UserError
from ..utils.messages import counted, first_few
from .sample_checks import (CONVERT_HINT, SIZE_HINT, SKIPPED_KEY,
                            BadSampleError, MaskSizeError, MaskValueError,
                            check_masks, check_sizes, decode_problem,
                            file_problem, listing, missing_detail)

# Repeated ids named in the message; the rest are counted.
SHOWN_REPEATS = 5


class ISICDataset(BaseSegDataset):
    """Binary lesion segmentation on ISIC dermoscopy images.

    Masks on disk must hold 0 (background) and 1 (lesion); 255 is the ignore
    index, so the official 0/255 masks must go through the converter first.

    Fault handling (see ``docs/reliability.md``):

    * At load, an ``ann_file`` that is a folder is refused
      (:class:`UserError`): mmseg would read every image of ``img_path``
      instead, the test images among them.
    * When built, a ``data_prefix`` entry that is no string (``None``) is
      refused (:class:`UserError`; mmengine's TypeError traceback named
      neither), and so is, at load, a ``data_prefix`` without
      ``seg_map_path`` when the pipeline loads masks: mmseg listed no mask
      and the first sample failed with a KeyError traceback.
    * At load, images, masks and split file from two converted sets
      (folders with a ``meta.json``), such as an absolute ``seg_map_path``
      or ``ann_file`` into another set, are refused (:class:`UserError`):
      the sets share their ids, so another set's masks were paired with
      these images (or its split chose them).
    * At load, a split file that starts with a UTF-8 byte-order mark is
      refused (:class:`UserError`): its first id was reported missing; so
      is one that is not UTF-8 text (UTF-16: a traceback).
    * At load, a split file that lists an id more than once is refused
      (:class:`UserError`): the image would be trained on or scored that
      many times.
    * At load, ``indices`` (mmengine's subset option) that select no
      image (``0``, ``[]``), more images than the split lists, a position
      outside it (negative in a list) or one position twice are refused
      (:class:`UserError`): mmengine crashed later with a ValueError or
      IndexError traceback, or scored an image twice.
    * At load, every mask is read once (about 1 ms each) and a mask whose
      values are not 0/1 -- e.g. an unconverted 0/255 mask -- stops the run
      with a :class:`MaskValueError` naming the files and how to convert
      them. Missing images and unreadable masks are reported too (a
      missing one with what lies in its place: the same name in another
      case, ``ISIC_0000000.JPG``, an id listed with its extension, or an
      invisible character in the id).
    * At load, a mask of another size than its image as loaded (after the
      EXIF orientation the image loader applies) stops the run with a
      :class:`MaskSizeError`: mmseg's ``Resize`` would stretch it over the
      image in training without an error.
    * While loading a sample, a missing, empty, truncated or undecodable
      image or mask raises :class:`BadSampleError` naming the file
      (``on_bad_sample='raise'``), or is replaced by the next sample and
      recorded in the sample's metainfo (``on_bad_sample='skip'``), so that
      ``BadSampleSummaryHook`` counts and logs it at the end of the epoch.
      It is never trained on.

    Args:
        img_suffix (str): Image file suffix. Defaults to '.jpg'.
        seg_map_suffix (str): Mask file suffix. Defaults to '.png'.
        on_bad_sample (str): 'raise' (default) or 'skip'.
        check_masks (bool): Check the mask values and sizes at load.
            Defaults to True.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``ann_file`` = a split file, ``data_prefix``,
            ``pipeline`` ...).

    Raises:
        UserError: ``on_bad_sample`` is neither 'raise' nor 'skip';
            ``metainfo`` names other classes or ``reduce_zero_label`` is
            True; a ``data_prefix`` entry is no string; at load, the
            pipeline loads masks but ``data_prefix`` names no mask folder,
            ``ann_file`` is a folder, is not plain UTF-8 text or lists an
            id more than once, or images, masks and split file come from
            two converted sets.
    """
    METAINFO = dict(
        classes=('background', 'lesion'), palette=[[0, 0, 0], [255, 64, 64]])

    def __init__(self,
                 img_suffix='.jpg',
                 seg_map_suffix='.png',
                 on_bad_sample='raise',
                 check_masks=True,
                 **kwargs) -> None:
        if on_bad_sample not in ('raise', 'skip'):
            # A config value: one ERROR line in the tools, not a traceback.
            raise UserError(f"{type(self).__name__}: on_bad_sample must be "
                            f"'raise' or 'skip', got {on_bad_sample!r}")
        if kwargs.pop('reduce_zero_label', False):
            # The masks' 0 is the background class, not "unlabelled":
            # reducing it would ignore the background and train the lesion
            # as class 0.
            raise UserError(
                f'{type(self).__name__}: reduce_zero_label=True does not fit '
                'the ISIC masks (0 = background, 1 = lesion): the background '
                'would be ignored and the lesion learned as class 0. Remove '
                'the option.')
        for key, value in (kwargs.get('data_prefix') or {}).items():
            if not isinstance(value, str):
                # mmengine's TypeError traceback named neither the option
                # nor the dataset.
                raise UserError(
                    f'{type(self).__name__}: data_prefix.{key} must be a '
                    f"folder under data_root (such as 'images' or 'masks'), "
                    f'got {value!r}')
        # Set before the base class loads the data list.
        self.on_bad_sample = on_bad_sample
        self.check_masks = check_masks
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=False,
            **kwargs)

    @classmethod
    def get_label_map(cls, new_classes=None):
        """Refuse ``metainfo`` classes other than the masks' own.

        mmseg maps the labels of every mask to the order of the classes the
        config names (a class left out becomes "ignore"), so that
        ``classes=('lesion', 'background')`` trained and scored the
        background as the lesion, without an error; the lesion metrics and
        the models' heads take label 1 as the lesion.

        Raises:
            UserError: ``new_classes`` differs from ``METAINFO['classes']``.
        """
        expected = cls.METAINFO['classes']
        if new_classes is not None and tuple(new_classes) != expected:
            raise UserError(
                f'{cls.__name__}: metainfo classes must be {expected} (the '
                'labels 0 and 1 of the masks), got '
                f'{tuple(new_classes)}; mmseg would relabel every mask to '
                'that order (or ignore a class left out). Remove '
                'metainfo.classes from the dataset config.')
        return None

    # -- loading the list -------------------------------------------------

    def load_data_list(self):
        """Read the split file and check the files it lists (see the class
        docstring)."""
        name = type(self).__name__
        ann_file = self.ann_file
        if ann_file and osp.isdir(ann_file):
            # mmseg would ignore the folder and read every image under
            # img_path: all splits, the test images too.
            raise UserError(
                f'{name}: ann_file {ann_file} is a folder, not a split file; '
                'mmseg would read every image under '
                f'{self.data_prefix.get("img_path")} instead (all splits '
                'together). Name a split file, such as '
                'splits/lightweight_train.txt.')
        if ann_file and not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'{name}: split file {ann_file} does not exist. Prepare the '
                'data with python tools/dataset_converters/isic.py RAW_DIR '
                'DATA_ROOT, or fix data_root/ann_file in the config.')
        if ann_file and self._local_files():
            self._check_split_encoding(ann_file)
        if not self.data_prefix.get('seg_map_path') and \
                self._pipeline_loads_masks():
            # mmseg then lists no mask: a KeyError 'seg_map_path' traceback
            # at the first sample, after the run had started.
            raise UserError(
                f'{name}: data_prefix has no seg_map_path (the masks '
                f'folder), but the pipeline loads masks (LoadAnnotations); '
                "set data_prefix=dict(img_path='images', "
                "seg_map_path='masks'), or segment unlabelled images with "
                'tools/infer.py.')
        self._check_one_converted_set()
        data_list = [
            info for info in super().load_data_list()
            # A blank line in the split file is not a sample.
            if osp.basename(info['img_path']) != self.img_suffix
        ]
        if not data_list:
            source = ann_file if ann_file and not osp.isdir(ann_file) else \
                self.data_prefix.get('img_path')
            raise ValueError(
                f'{name}: no samples in {source} (empty split file or image '
                'folder). Check data_root and ann_file in the config, or '
                're-run tools/dataset_converters/isic.py.')
        self._check_repeats(data_list)
        if self._local_files():
            self._check_files(data_list)
        return data_list

    def _check_one_converted_set(self):
        """Refuse images, masks and split file from two converted sets
        (folders with the converter's ``meta.json``): an absolute
        ``seg_map_path`` or ``ann_file`` into another set, or
        ``../other/masks``. Every converted set names its images
        ISIC_0000000 ..., and sets of one size pass the size check, so the
        masks of one set were paired with the images of the other, or
        another set's split chose the images, without an error. A folder
        outside any converted set (masks drawn anew, a split file of one's
        own) is the user's choice.

        Raises:
            UserError: Naming the folders and their sets.
        """
        if not self._local_files():
            return
        parts = [(f'the {what} ({self.data_prefix[key]})',
                  osp.dirname(osp.normpath(self.data_prefix[key])))
                 for what, key in (('images', 'img_path'),
                                   ('masks', 'seg_map_path'))
                 if self.data_prefix.get(key)]
        if self.ann_file and osp.basename(
                osp.dirname(osp.normpath(self.ann_file))) == 'splits':
            parts.append((f'the split file ({self.ann_file})',
                          osp.dirname(osp.dirname(
                              osp.normpath(self.ann_file)))))
        sets = {}
        for what, root in parts:
            if osp.isfile(osp.join(root, 'meta.json')):
                sets.setdefault(osp.realpath(root), []).append(what)
        if len(sets) < 2:
            return
        shown = '; '.join(f'{" and ".join(whats)} from {root}'
                          for root, whats in sets.items())
        raise UserError(
            f'{type(self).__name__}: {shown}: {len(sets)} converted sets '
            '(meta.json) that share their ids, so the masks or the split of '
            "one would be applied to the other's images. Point data_root at "
            "one converted set and keep data_prefix=dict(img_path='images', "
            "seg_map_path='masks') and ann_file='splits/<split>.txt'.")

    def _check_split_encoding(self, ann_file):
        """:func:`check_split_encoding` under this dataset's name."""
        check_split_encoding(ann_file, type(self).__name__)

    def _get_unserialized_subset(self, indices):
        """mmengine's subset by ``indices``, after :meth:`_check_indices`."""
        self._check_indices(indices, len(self.data_list))
        return super()._get_unserialized_subset(indices)

    def _check_indices(self, indices, size):
        """Refuse ``indices`` that do not select a subset of the ``size``
        samples of the split: an int N takes the first N (the last -N when
        negative, as mmengine documents); a list takes those positions.

        Raises:
            UserError: Naming the option, the split file and the fault.
        """
        where = (f'{type(self).__name__}: indices={indices!r} '
                 f'({self.ann_file or self.data_prefix.get("img_path")} '
                 f'lists {counted(size, "image")})')
        if isinstance(indices, bool) or not isinstance(
                indices, (int, list, tuple)):
            raise UserError(f'{where}: give a number of images N (the first '
                            'N; -N: the last N) or a list of positions')
        if isinstance(indices, int):
            if indices == 0:
                raise UserError(f'{where} selects no image; give the number '
                                'of images to use, or remove the option')
            if abs(indices) > size:
                raise UserError(f'{where} asks for more images than there '
                                f'are; give at most {size}, or remove the '
                                'option to use them all')
            return
        if not indices:
            raise UserError(f'{where} selects no image')
        bad = [i for i in indices if isinstance(i, bool) or
               not isinstance(i, int) or not 0 <= i < size]
        if bad:
            # repr: a position given as '3' must not read as 3.
            raise UserError(f'{where}: positions '
                            f'{first_few([repr(i) for i in bad])} are not '
                            f'in the split (0 to {size - 1})')
        repeated = sorted(i for i, n in Counter(indices).items() if n > 1)
        if repeated:
            raise UserError(f'{where} repeats positions '
                            f'{first_few(repeated)}: those images would be '
                            'scored (or trained on) more than once')

    def _check_repeats(self, data_list):
        """:func:`check_split_repeats` of the ids of ``data_list`` under
        this dataset's name.

        Args:
            data_list (list[dict]): From the split file.

        Raises:
            UserError: Naming the split file and the repeated ids.
        """
        # normpath: './ISIC_0000000' is the same image as 'ISIC_0000000'.
        img_dir = osp.normpath(self.data_prefix.get('img_path', ''))
        names = [osp.relpath(osp.normpath(info['img_path']), img_dir)
                 for info in data_list]
        check_split_repeats(
            [name[:len(name) - len(self.img_suffix)] for name in names],
            self.ann_file, type(self).__name__)

    def _local_files(self):
        return not self.backend_args or self.backend_args.get(
            'backend', 'local') == 'local'

    def _pipeline_loads_masks(self):
        """Whether this dataset's pipeline holds mmseg's
        ``LoadAnnotations`` (also inside ``TestTimeAug``)."""
        from mmseg.datasets.transforms import LoadAnnotations

        def loads(transforms):
            for transform in transforms:
                if isinstance(transform, LoadAnnotations):
                    return True
                inner = getattr(transform, 'subroutines', None)
                if inner and any(loads(getattr(sub, 'transforms', [sub]))
                                 for sub in inner):
                    return True
            return False
        return loads(getattr(self.pipeline, 'transforms', []))

    def _loader_applies_exif(self):
        """Whether this dataset's pipeline turns images by their EXIF
        orientation, as mmcv's ``LoadImageFromFile`` does unless told
        otherwise (masks are never turned): ``'pillow'`` for its Pillow
        backend, which turns every format (OpenCV not a WebP)."""
        from mmcv.transforms import LoadImageFromFile
        for transform in getattr(self.pipeline, 'transforms', []):
            if isinstance(transform, LoadImageFromFile):
                if transform.color_type not in ('color', 'grayscale'):
                    return False
                if transform.imdecode_backend == 'pillow':
                    return 'pillow'
                return transform.imdecode_backend == 'cv2'
        return True

    def _masks_read_as_indices(self):
        """Whether this dataset's pipeline reads a palette mask as its
        indices: mmseg's ``LoadAnnotations`` does with its default Pillow
        backend; with OpenCV it gets the palette's colours."""
        from mmseg.datasets.transforms import LoadAnnotations
        for transform in getattr(self.pipeline, 'transforms', []):
            if isinstance(transform, LoadAnnotations):
                return transform.imdecode_backend == 'pillow'
        return True

    def _check_files(self, data_list):
        missing = [(info['img_path'], 'missing') for info in data_list
                   if not osp.isfile(info['img_path'])]
        unreadable = []
        if self.check_masks:
            bad_values, unreadable = check_masks(
                (info['seg_map_path'] for info in data_list
                 if 'seg_map_path' in info),
                palette_indices=self._masks_read_as_indices())
            if bad_values:
                raise MaskValueError(
                    f'{type(self).__name__}: {len(bad_values)} of '
                    f'{len(data_list)} masks listed in {self.ann_file} '
                    f'{"does" if len(bad_values) == 1 else "do"} not '
                    f'hold 0/1 labels:\n{listing(bad_values)}\n' +
                    CONVERT_HINT)
            broken = {path for path, _ in missing + unreadable}
            bad_sizes = check_sizes(
                ((info['img_path'], info['seg_map_path'])
                 for info in data_list if 'seg_map_path' in info
                 and info['img_path'] not in broken
                 and info['seg_map_path'] not in broken),
                apply_exif=self._loader_applies_exif())
            if bad_sizes:
                raise MaskSizeError(
                    f'{type(self).__name__}: {len(bad_sizes)} of '
                    f'{len(data_list)} masks listed in {self.ann_file} '
                    f'{"is" if len(bad_sizes) == 1 else "are"} '
                    'not the size of their image (Resize would stretch such '
                    'a mask over its image in training, and a test cannot '
                    f'score it):\n{listing(bad_sizes)}\n' + SIZE_HINT)
        bad = missing + unreadable
        if not bad:
            return
        # What lies in a missing file's place (ISIC_0000000.JPG; an id
        # listed with its extension), so that the fix is plain.
        names = {}
        suffixes = {info.get(key): suffix for info in data_list
                    for key, suffix in (('img_path', self.img_suffix),
                                        ('seg_map_path', self.seg_map_suffix))}
        bad = [(path, missing_detail(path, suffixes.get(path, ''), names)
                if detail == 'missing' else detail) for path, detail in bad]
        message = (f'{type(self).__name__}: {len(bad)} bad files among the '
                   f'samples of {self.ann_file}:\n{listing(bad)}')
        if self.on_bad_sample == 'raise':
            raise BadSampleError(
                message + "\nFix or remove them, or set on_bad_sample='skip'"
                ' in the training dataset config to skip such samples.',
                path=bad[0][0])
        print_log(
            message + '\nThey will be skipped (on_bad_sample=\'skip\') and '
            'counted at the end of each epoch.',
            logger='current', level=logging.WARNING)

    # -- loading a sample ---------------------------------------------------

    def _files_of(self, data_info):
        files = [('image', data_info['img_path'])]
        if 'seg_map_path' in data_info:
            files.append(('mask', data_info['seg_map_path']))
        return files

    def prepare_data(self, idx):
        """Run the pipeline on sample ``idx``; a missing, truncated or
        undecodable image or mask raises :class:`BadSampleError` naming the
        file (other errors propagate unchanged)."""
        data_info = self.get_data_info(idx)
        check = self._local_files()
        if check:
            for kind, path in self._files_of(data_info):
                problem = file_problem(path)
                if problem:
                    raise BadSampleError.of_file(kind, path, problem)
        try:
            return self.pipeline(data_info)
        except Exception as err:
            if check:
                for kind, path in self._files_of(data_info):
                    problem = decode_problem(path)
                    if problem:
                        raise BadSampleError.of_file(
                            kind, path, problem) from err
            raise

    def __getitem__(self, idx):
        if self.on_bad_sample == 'raise':
            return super().__getitem__(idx)
        drawn = None  # the bad sample that was drawn (not its stand-ins)
        for _ in range(self.max_refetch + 1):
            try:
                data = super().__getitem__(idx)
            except BadSampleError as err:
                reported = self.__dict__.setdefault('_reported_bad', set())
                if err.path not in reported:  # once per file and process
                    reported.add(err.path)
                    print_log(f'Skipping a bad sample: {err}',
                              logger='current', level=logging.WARNING)
                drawn = drawn or err.path
                # The next sample, not a random one: no generator is drawn
                # from, so resumed runs stay reproducible.
                idx = (idx + 1) % len(self)
                continue
            if drawn:
                _record_skipped(data, drawn)
            return data
        raise BadSampleError(
            f'{type(self).__name__}: more than {self.max_refetch} bad samples '
            f'in a row (first: {drawn}); giving up.', path=drawn)


def check_split_encoding(ann_file, owner=None):
    """Refuse a split file that is not plain UTF-8 text: one that starts
    with a UTF-8 byte-order mark (Windows Notepad writes one), which mmseg
    reads as part of the first id, whose image was then reported missing
    though it is there; one saved as UTF-16 (Notepad's "Unicode") or in
    another encoding, which was a ``UnicodeDecodeError`` or "embedded null
    byte" traceback.

    Args:
        ann_file (str): The split file (local).
        owner (str, optional): Who reads it, for the message.

    Raises:
        UserError: Naming the split file.
    """
    with open(ann_file, 'rb') as f:
        text = f.read()
    owner = f'{owner}: split file' if owner else 'Split file'
    if text.startswith(b'\xef\xbb\xbf'):
        raise UserError(
            f'{owner} {ann_file} starts with a UTF-8 byte-order '
            'mark (as Windows Notepad saves it), which would be read as '
            'part of the first id; save it as plain UTF-8 without the mark, '
            'one id per line.')
    try:
        # NUL bytes: UTF-16 text without its byte-order mark.
        if b'\x00' not in text:
            text.decode('utf-8')
            return
    except UnicodeDecodeError:
        pass
    raise UserError(
        f'{owner} {ann_file} is not UTF-8 text (saved as '
        'UTF-16, "Unicode", or in another encoding?); save it as plain '
        'UTF-8, one id per line.')


def check_split_repeats(ids, ann_file, owner=None):
    """Refuse a split file that lists an id more than once: the image
    would weigh twice in training and in the pooled test figures.

    Args:
        ids (Sequence[str]): The ids the file lists, in its order.
        ann_file (str): The split file, for the message.
        owner (str, optional): Who reads it, for the message.

    Raises:
        UserError: Naming the split file and the repeated ids.
    """
    repeated = [(name, n) for name, n in Counter(ids).items() if n > 1]
    if not repeated:
        return
    shown = first_few([f'{name} ({n} times)' for name, n in repeated],
                      SHOWN_REPEATS)
    owner = f'{owner}: split file' if owner else 'Split file'
    raise UserError(
        f'{owner} {ann_file} lists {counted(len(repeated), "id")} more '
        f'than once: {shown}; each would be trained on or scored more '
        'than once. List each id once.')


def _record_skipped(data, path):
    """Note in the packed sample which bad sample it stands in for."""
    sample = data.get('data_samples') if isinstance(data, dict) else None
    if sample is not None and hasattr(sample, 'set_metainfo'):
        sample.set_metainfo({SKIPPED_KEY: [path]})
    elif isinstance(data, dict):
        data[SKIPPED_KEY] = [path]


@DATASETS.register_module()
class ISIC2016Dataset(ISICDataset):
    """ISIC 2016 Task 1 (900 training, 379 test images)."""


@DATASETS.register_module()
class ISIC2017Dataset(ISICDataset):
    """ISIC 2017 Task 1 (2000 training, 150 validation, 600 test images)."""


@DATASETS.register_module()
class ISIC2018Dataset(ISICDataset):
    """ISIC 2018 Task 1 (2594 training, 100 validation, 1000 test images)."""
