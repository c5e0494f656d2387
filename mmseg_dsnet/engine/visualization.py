"""What ``tools/test.py --show-dir`` / ``--show`` paints.

mmseg's ``SegVisualizationHook`` paints the images of every
``interval``-th test batch (50 by default), so on a split of fewer
batches it paints none, and names its paintings by the image's file name
alone, so of two images of one name one painting replaces the other.
The checks here refuse, before the test runs, a ``--show-dir`` or
``--show`` that would paint no image, paint two under one name, save no
file or show no window; :func:`report_paintings` says what was painted
and refuses a ``--show-dir`` left empty.
"""
import os
import os.path as osp

from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.messages import counted

#: Where mmseg's ``LocalVisBackend`` writes the paintings in ``save_dir``.
PAINTINGS = osp.join('vis_data', 'vis_image')


def painted_images(images, batch_size, interval):
    """The images mmseg's visualization hook paints in a one-process test:
    those of batch ``i`` (from 0) where ``(i + 1) % interval == 0``
    (mmengine's ``every_n_inner_iters``; none for an ``interval`` below 1).

    Args:
        images (int): The images of the test split.
        batch_size (int): The test loader's batch size.
        interval (int): ``default_hooks.visualization.interval``.

    Returns:
        list[int]: The indices of the painted images, in order.
    """
    if interval < 1 or batch_size < 1:
        return []
    return [index for index in range(images)
            if (index // batch_size + 1) % interval == 0]


def check_painting_names(img_paths, option):
    """Refuse images to be painted whose paintings would have one name:
    mmengine's ``LocalVisBackend`` names a painting after the image's file
    name alone (``test_<name>_<step>.png``), so the later would replace
    the earlier without a word.

    Args:
        img_paths (Sequence[str]): The images to be painted.
        option (str): The tool's option, for the message.

    Raises:
        UserError: Naming the first two images that clash.
    """
    first = {}
    for path in img_paths:
        name = osp.basename(path)
        if name in first:
            raise UserError(
                f'{option}: {first[name]} and {path} share the file name '
                f'{name}, so one painting would replace the other; give each '
                'test image its own file name. Nothing was tested.')
        first[name] = path


def check_paints_images(images, batch_size, interval, option):
    """Refuse ``--show-dir`` / ``--show`` when the hook would paint no image
    of the split (fewer batches than ``interval``).

    Args:
        images (int): The images of the test split.
        batch_size (int): The test loader's batch size.
        interval: ``default_hooks.visualization.interval``.
        option (str): The tool's option, for the message.

    Returns:
        list[int]: The indices of the images the hook paints
        (:func:`painted_images`).

    Raises:
        UserError: Naming the interval, the batches and the option to set.
    """
    if isinstance(interval, int) and not isinstance(interval, bool):
        painted = painted_images(images, batch_size, interval)
        if painted:
            return painted
    batches = -(-images // batch_size) if batch_size else 0
    raise UserError(
        f'{option} would paint no image: mmseg paints the images of one '
        'test batch in default_hooks.visualization.interval '
        f'({interval!r}) and the test split gives '
        f'{counted(batches, "batch", "batches")} of '
        f'{counted(images, "image")}; add --cfg-options '
        'default_hooks.visualization.interval=1 to paint every image. '
        'Nothing was tested.')


def check_saves_paintings(visualizer, config):
    """Refuse ``--show-dir`` with a visualizer that saves no image file:
    without a ``LocalVisBackend`` in its ``vis_backends`` the test would
    paint nothing into the folder and end with exit 0.

    Args:
        visualizer (dict): The config's ``visualizer``.
        config (str): The config file, for the message.

    Raises:
        UserError: Naming the config and the backend to add.
    """
    from mmengine.registry import VISBACKENDS
    from mmengine.visualization import LocalVisBackend
    for backend in visualizer.get('vis_backends') or []:
        kind = backend.get('type') if isinstance(backend, dict) else None
        if isinstance(kind, str):
            # mmseg's registry finds mmengine's backends too.
            with VISBACKENDS.switch_scope_and_registry('mmseg') as registry:
                kind = registry.get(kind)
        # An unknown backend is the runner's to refuse.
        if not isinstance(kind, type) or issubclass(kind, LocalVisBackend):
            return
    raise UserError(
        f'--show-dir needs a LocalVisBackend among the visualizer\'s '
        f'vis_backends in {config} (it saves no painting without one); add '
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend')]) to"
        ' it')


# matplotlib's backends that draw into files only: mmengine's
# Visualizer.show opens no window with them.
FILE_ONLY_BACKENDS = ('agg', 'cairo', 'pdf', 'pgf', 'ps', 'svg', 'template')


def check_can_show():
    """Refuse ``--show`` where matplotlib (which mmengine's visualizer
    shows through) opens no window: on a machine without a display it
    takes the ``agg`` backend, and the test would "show" every image
    into nothing and end with exit 0.

    Raises:
        UserError: Naming the backend and ``--show-dir``.
    """
    import matplotlib
    backend = matplotlib.get_backend()
    if backend.lower() in FILE_ONLY_BACKENDS:
        raise UserError(
            f"--show cannot show here: matplotlib's backend is {backend}, "
            'which opens no window (no display, or MPLBACKEND); give '
            '--show-dir DIR to save the paintings instead')


def count_paintings(show_dir):
    """The paintings in ``show_dir`` (:data:`PAINTINGS`).

    Args:
        show_dir (str): The visualizer's ``save_dir``.

    Returns:
        int: How many files it holds.
    """
    folder = osp.join(show_dir, PAINTINGS)
    if not osp.isdir(folder):
        return 0
    return sum(1 for entry in os.scandir(folder) if entry.is_file())


def check_paintings(runner, img_paths, show_dir=None):
    """Refuse ``--show-dir`` / ``--show`` that would paint no image of the
    split (:func:`check_paints_images`), or, for ``--show-dir``, two
    paintings of one name (:func:`check_painting_names`), before the test.

    Args:
        runner (Runner): The test's runner, built.
        img_paths (Sequence[str]): The images of its test split, in order.
        show_dir (str, optional): ``--show-dir``; None for ``--show``.

    Returns:
        tuple | None: ``(painted, interval)``: how many images the hook is
        to paint and its interval; None for a runner without mmseg's
        ``SegVisualizationHook``.
    """
    from mmseg.engine.hooks import SegVisualizationHook
    hooks = [hook for hook in runner.hooks
             if isinstance(hook, SegVisualizationHook)]
    if not hooks:
        return None
    loader = runner.test_dataloader
    images, interval = len(loader.dataset), hooks[0].interval
    option = f'--show-dir {show_dir}' if show_dir else '--show'
    painted = check_paints_images(images, loader.batch_size, interval, option)
    if show_dir:
        check_painting_names([img_paths[index] for index in painted], option)
    return len(painted), interval


def report_paintings(painted, images, show_dir=None):
    """Say how many images were painted (or shown) and where; refuse a
    ``--show-dir`` left empty (a visualizer without a ``LocalVisBackend``
    saves none).

    Args:
        painted (tuple): What :func:`check_paintings` returned.
        images (int): The images of the test split.
        show_dir (str, optional): ``--show-dir``; None for ``--show``.

    Raises:
        UserError: ``show_dir`` holds no painting.
    """
    expected, interval = painted
    every = ('every batch' if interval == 1 else
             f'one batch in {interval}; --cfg-options '
             'default_hooks.visualization.interval=1 paints all')
    if show_dir:
        found = count_paintings(show_dir)
        if not found:
            raise UserError(
                f'--show-dir {show_dir}: the test painted no image '
                f'into {osp.join(show_dir, PAINTINGS)} (does the '
                "config's visualizer have vis_backends=[dict(type="
                "'LocalVisBackend')]?); no metrics were written")
        print(f'Painted {found} of the {images} test images into '
              f'{osp.join(show_dir, PAINTINGS)} ({every})')
    else:
        print(f'Showed {expected} of the {images} test images ({every})')
