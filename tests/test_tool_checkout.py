"""A tool runs the package of its own checkout
(:mod:`mmseg_dsnet.utils.tool_checkout`)."""
import os
import subprocess
import sys

from conftest import REPO

from mmseg_dsnet.utils.paths import checkout_of_tool

TOOL = 'import mmseg_dsnet\nprint(mmseg_dsnet.__file__)\n'


def make_checkout(root, package=True):
    """A folder laid out as a checkout: ``tools/analysis_tools/show.py``,
    a tool that imports the package and prints where it came from, and
    (with ``package``) an ``mmseg_dsnet`` package of its own."""
    tool = root / 'tools' / 'analysis_tools' / 'show.py'
    tool.parent.mkdir(parents=True)
    tool.write_text(TOOL)
    if package:
        (root / 'mmseg_dsnet').mkdir()
        (root / 'mmseg_dsnet' / '__init__.py').write_text('')
    return tool


def run(tool, pythonpath, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ('PYTHONPATH', 'RANK')}
    return subprocess.run([sys.executable, str(tool)],
                          env=dict(environ, PYTHONPATH=str(pythonpath),
                                   **env),
                          capture_output=True, text=True, timeout=300)


def test_a_tool_of_another_checkout_is_refused(tmp_path):
    """A second checkout's tool, run with an environment that imports this
    checkout's package (an editable install of it), ran this checkout's
    code with the second one's configs, exit 0."""
    copy = tmp_path / 'copy'
    tool = make_checkout(copy)
    done = run(tool, REPO)
    assert done.returncode == 2
    assert done.stdout == ''
    assert done.stderr == (
        f'ERROR: {tool} is a tool of the checkout {copy}, but this Python '
        f'imports the mmseg_dsnet package of {REPO}, whose code it would '
        f'run with the configs of {copy}; run it with the environment of '
        f'{copy} (bash tools/setup_env.sh there makes its .venv) or with '
        f'PYTHONPATH={copy}\n')
    # The way out the line gives: the tool's own package.
    done = run(tool, copy)
    assert (done.returncode, done.stdout) == (
        0, f"{copy / 'mmseg_dsnet' / '__init__.py'}\n"), done.stderr
    # Under torchrun only rank 0 says it; every process stops.
    done = run(tool, REPO, RANK='1')
    assert (done.returncode, done.stdout, done.stderr) == (2, '', '')


def test_scripts_that_are_no_tool_of_a_checkout_import_the_package(
        tmp_path):
    """An application's own ``tools/`` folder (no ``mmseg_dsnet`` beside
    it) and a script elsewhere import the package as before."""
    tool = make_checkout(tmp_path / 'app', package=False)
    script = tmp_path / 'script.py'
    script.write_text(TOOL)
    for path in (tool, script):
        done = run(path, REPO)
        assert (done.returncode, done.stdout) == (
            0, f"{REPO / 'mmseg_dsnet' / '__init__.py'}\n"), done.stderr


def test_checkout_of_tool_names_the_folder_above_tools(tmp_path):
    tool = make_checkout(tmp_path / 'copy')
    assert checkout_of_tool(str(tool)) == str(tmp_path / 'copy')
    assert checkout_of_tool(str(REPO / 'tools' / 'train.py')) == \
        os.path.realpath(REPO)
    # A link to a tool belongs to the checkout the tool is in.
    (tmp_path / 'bin').mkdir()
    (tmp_path / 'bin' / 'show.py').symlink_to(tool)
    assert checkout_of_tool(str(tmp_path / 'bin' / 'show.py')) == \
        str(tmp_path / 'copy')
    assert checkout_of_tool(str(tmp_path / 'bin' / 'other.py')) is None
    assert checkout_of_tool(
        str(make_checkout(tmp_path / 'app', package=False))) is None
