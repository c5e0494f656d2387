"""The launch scripts (tools/dist_*.sh, tools/slurm_*.sh) with stand-ins for
the interpreter and srun: what they refuse before starting anything and
what they pass on unchanged; tools/run_tests.sh, run_demo.sh, setup_env.sh
and the device scripts (tools/device/*.sh) with stand-ins likewise."""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import REPO

USAGE = {
    'dist_train.sh': 'bash tools/dist_train.sh CONFIG GPUS [train.py args]',
    'dist_test.sh':
    'bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]',
    'slurm_train.sh': 'bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG '
    '[train.py args]',
    'slurm_test.sh': 'bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG '
    'CHECKPOINT [test.py args]',
}


def launch(tmp_path, script, *args, shell='bash', **env):
    """Runs tools/SCRIPT from tmp_path with SHELL; the interpreter and srun
    write their arguments, one per line, to tmp_path/started."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / 'started'
    stand_in = bin_dir / 'record'
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    stand_in.chmod(0o755)
    (bin_dir / 'srun').symlink_to(stand_in)
    full_env = dict(os.environ, PYTHON=str(stand_in),
                    PATH=f'{bin_dir}:{os.environ["PATH"]}')
    for name in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'NNODES',
                 'NODE_RANK', 'PORT', 'MASTER_ADDR', 'SRUN_ARGS'):
        full_env.pop(name, None)
    full_env.update(env)
    done = subprocess.run([shell, str(REPO / 'tools' / script), *args],
                          cwd=tmp_path, env=full_env, capture_output=True,
                          text=True, timeout=30)
    started = record.read_text().splitlines() if record.exists() else None
    (bin_dir / 'srun').unlink()
    record.unlink(missing_ok=True)
    return done, started


@pytest.mark.parametrize('script,args,env,error', [
    ('dist_train.sh', (), {}, 'CONFIG is missing'),
    # A forgotten GPUS: the first option took its place.
    ('dist_train.sh', ('a.py', '--work-dir', 'w'), {},
     "GPUS is missing: '--work-dir' is an option, not GPUS"),
    ('dist_train.sh', ('a.py', 'two'), {},
     "GPUS must be a whole number, got 'two'"),
    ('dist_train.sh', ('a.py', '0'), {}, "GPUS must be at least 1, got '0'"),
    ('dist_train.sh', ('a.py', '-1'), {},
     "GPUS must be a whole number, got '-1'"),
    ('dist_test.sh', ('a.py', 'c.pth'), {}, 'GPUS is missing'),
    ('dist_test.sh', ('a.py', 'c.pth', '2'), {'PORT': '99999'},
     "PORT must be from 1 to 65535, got '99999'"),
    ('dist_test.sh', ('a.py', 'c.pth', '2'), {'NNODES': '0'},
     "NNODES must be at least 1, got '0'"),
    ('dist_test.sh', ('a.py', 'c.pth', '2'), {
        'NNODES': '2', 'NODE_RANK': '2'
    }, "NODE_RANK must be from 0 to 1, got '2'"),
    # Each node's own address: node 1 waited for a master of its own.
    ('dist_train.sh', ('a.py', '2'), {
        'NNODES': '2', 'NODE_RANK': '1'
    }, 'MASTER_ADDR is not set: with NNODES=2 every node needs the address '
     'of node 0'),
    ('slurm_train.sh', ('gpu', 'dsnet'), {}, 'CONFIG is missing'),
    ('slurm_test.sh', ('gpu', 'dsnet', 'a.py'), {}, 'CHECKPOINT is missing'),
    ('slurm_test.sh', ('gpu', 'dsnet', 'a.py', 'c.pth'), {'GPUS': 'all'},
     "GPUS must be a whole number, got 'all'"),
    # Another launcher, after the script's own: each task trained (tested)
    # alone, all at once into the same work dir, exit 0.
    ('slurm_train.sh', ('gpu', 'dsnet', 'a.py', '--work-dir', 'w',
                        '--launcher', 'none'), {},
     "'--launcher none' among the train.py arguments: the script gives "
     '--launcher slurm (one task per GPU); with another each task would '
     'run alone, on all the data, into the same work dir; leave out '
     '--launcher'),
    ('slurm_test.sh', ('gpu', 'dsnet', 'a.py', 'c.pth', '--launch=pytorch'),
     {}, "'--launch=pytorch' among the test.py arguments: the script gives "
     '--launcher slurm (one task per GPU); with another each task would '
     'run alone, on all the data, into the same work dir; leave out '
     '--launcher'),
])
def test_launch_scripts_refuse_missing_arguments_and_bad_settings(
        tmp_path, script, args, env, error):
    """A missing argument or a setting that is no number reached torchrun
    (a Python traceback such as ``ValueError: Unsupported nproc_per_node
    value: --work-dir``, exit 1) or srun (an empty partition or config)."""
    done, started = launch(tmp_path, script, *args, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f'ERROR: {error}', f'usage: {USAGE[script]}']
    assert started is None and done.stdout == ''


@pytest.mark.parametrize('script,args,error', [
    ('dist_train.sh', ('nope.py', '2'), 'config file nope.py does not exist'),
    ('dist_test.sh', ('cfg.py', 'nope.pth', '2'),
     'checkpoint nope.pth does not exist'),
    ('slurm_train.sh', ('gpu', 'dsnet', 'nope.py'),
     'config file nope.py does not exist'),
    ('slurm_test.sh', ('gpu', 'dsnet', 'cfg.py', 'work'),
     'checkpoint work is a folder, not a file'),
])
def test_launch_scripts_refuse_a_missing_config_or_checkpoint(
        tmp_path, script, args, error):
    """Each process refused it (as many ERROR lines as processes), then
    torchrun's ChildFailedError traceback, exit 1; srun asked for GPUs
    first."""
    (tmp_path / 'cfg.py').write_text('')
    (tmp_path / 'work').mkdir()
    done, started = launch(tmp_path, script, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f'ERROR: {error}']
    assert started is None


def test_launch_scripts_pass_arguments_with_spaces_unchanged(tmp_path):
    (tmp_path / 'my cfg.py').write_text('')
    (tmp_path / 'c k.pth').write_bytes(b'')
    done, started = launch(tmp_path, 'dist_test.sh', 'my cfg.py', 'c k.pth',
                           '2', '--out', 'a b', PORT='08080')
    assert done.returncode == 0, done.stderr
    assert started[-6:] == ['my cfg.py', 'c k.pth', '--launcher', 'pytorch',
                            '--out', 'a b']
    assert '--master_port=08080' in started
    done, started = launch(tmp_path, 'slurm_train.sh', 'gpu', 'dsnet',
                           'my cfg.py', '--work-dir', 'a b', GPUS='8',
                           GPUS_PER_NODE='8')
    assert done.returncode == 0, done.stderr
    assert started[:3] == ['-p', 'gpu', '--job-name=dsnet']
    assert started[-5:] == ['my cfg.py', '--launcher', 'slurm',
                            '--work-dir', 'a b']
    # The script's own launcher, given again, is no other.
    done, started = launch(tmp_path, 'slurm_test.sh', 'gpu', 'dsnet',
                           'my cfg.py', 'c k.pth', '--launcher', 'slurm')
    assert done.returncode == 0, done.stderr
    assert started[-4:] == ['--launcher', 'slurm', '--launcher', 'slurm']


@pytest.mark.parametrize('script,args,error', [
    ('dist_train.sh', (), 'CONFIG is missing'),
    ('dist_test.sh', ('a.py', 'c.pth'), 'GPUS is missing'),
    ('slurm_train.sh', ('gpu', 'dsnet'), 'CONFIG is missing'),
    ('slurm_test.sh', ('gpu', 'dsnet', 'a.py'), 'CHECKPOINT is missing'),
])
def test_launch_scripts_started_with_sh_run_as_with_bash(
        tmp_path, script, args, error):
    """``sh tools/dist_train.sh`` (MMSegmentation's docs' form; sh is dash
    on Debian and Ubuntu) ended in ``source: not found``, a ``not found``
    line per check and ``Bad substitution``, exit 127 or 2; slurm_*.sh
    went on past the checks it could not run."""
    done, started = launch(tmp_path, script, *args, shell='sh')
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f'ERROR: {error}', f'usage: {USAGE[script]}']
    assert started is None
    (tmp_path / 'my cfg.py').write_text('')
    done, started = launch(tmp_path, 'slurm_train.sh', 'gpu', 'dsnet',
                           'my cfg.py', '--work-dir', 'a b', shell='sh')
    assert done.returncode == 0, done.stderr
    assert started[-5:] == ['my cfg.py', '--launcher', 'slurm',
                            '--work-dir', 'a b']


def test_run_and_device_scripts_started_with_sh_run_as_with_bash(tmp_path):
    """``sh tools/setup_env.sh`` (also run_tests.sh, run_demo.sh, the
    device scripts): ``set: Illegal option -o pipefail`` or ``Syntax
    error: "(" unexpected``, exit 2, before anything ran."""
    copy, env = setup_env_copy(tmp_path)
    done = subprocess.run(['sh', str(copy / 'tools' / 'setup_env.sh')],
                          cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((copy / '.venv').glob('.mmseg-dsnet-*'))) == 1
    shutil.copy(REPO / 'tools' / 'run_tests.sh', copy / 'tools')
    done = subprocess.run(['sh', str(copy / 'tools' / 'run_tests.sh'),
                           '--collect-only'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / 'out'
    done = run_device_script('design_screen.sh', tmp_path, shell='sh',
                             OUT=str(out), WORK=str(tmp_path / 'work'))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / 'records.tar.gz').is_file()


def test_run_tests_sh_runs_only_the_test_files_given(tmp_path):
    """``run_tests.sh tests/test_x.py`` ran ``pytest -q tests tests/test_x.py``:
    the whole suite (about ten minutes), not the file asked for."""
    parts = sorted((REPO / 'requirements').glob('*.txt')) + [
        REPO / 'setup.py', REPO / 'tools' / 'setup_env.sh']
    stamp = hashlib.sha1(b''.join(p.read_bytes() for p in parts)).hexdigest()
    if not (REPO / '.venv' / f'.mmseg-dsnet-{stamp[:16]}').exists():
        pytest.skip('.venv is not up to date: run_tests.sh would install it')
    # From another folder: the paths are the repository's.
    done = subprocess.run(
        ['bash', str(REPO / 'tools' / 'run_tests.sh'),
         'tests/test_launch_scripts.py', '--collect-only', '-p',
         'no:cacheprovider'], cwd=tmp_path, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = [line for line in done.stdout.splitlines() if '::' in line]
    assert collected and all(
        line.startswith('tests/test_launch_scripts.py::')
        for line in collected), done.stdout[-2000:]
    assert os.listdir(tmp_path) == []


def test_run_demo_sh_runs_the_package_of_its_checkout(tmp_path):
    """With a .venv whose editable install is of another checkout (a copy
    of the repository, a git worktree sharing one .venv), run_demo.sh ran
    this checkout's demo.py on the other checkout's package, exit 0."""
    if not (REPO / '.venv' / 'bin' / 'python').exists():
        pytest.skip('no .venv')
    copy = tmp_path / 'copy'
    (copy / 'tools').mkdir(parents=True)
    (copy / 'mmseg_dsnet').mkdir()
    (copy / 'mmseg_dsnet' / '__init__.py').write_text('')
    shutil.copy(REPO / 'tools' / 'run_demo.sh', copy / 'tools')
    (copy / 'tools' / 'setup_env.sh').write_text('exit 0\n')  # a stand-in
    (copy / 'tools' / 'demo.py').write_text(
        'import sys\nimport mmseg_dsnet\n'
        'print(mmseg_dsnet.__file__, sys.argv[1:])\n')
    (copy / '.venv').symlink_to(REPO / '.venv')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    done = subprocess.run(
        ['bash', str(copy / 'tools' / 'run_demo.sh'), '--work-dir', 'a b'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"{copy / 'mmseg_dsnet' / '__init__.py'} ['--work-dir', 'a b']\n")


# Stands in for both the interpreter that makes the venv and the venv's
# python: imports pass, `-m pip install` is logged and fails while
# FAKE_PIP_FAILS is set; `-m venv` makes the venv's python, then (while
# FAKE_VENV_FAILS is set) fails before its pip is there, as without ensurepip.
# `pip install --dry-run` (not logged) finds a package in pip's own sources
# only while FAKE_PIP_HOLDS is set.
FAKE_VENV_PYTHON = r'''#!/usr/bin/env bash
case "$1" in
  --version) echo 'Python 3.11 (stand-in)' ;;
  -c) exit 0 ;;
  -m)
    if [ "$2" = venv ]; then
      mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
      [ -z "${FAKE_VENV_FAILS:-}" ] || {
        echo 'The virtual environment was not created successfully because ensurepip is not available.' >&2
        exit 1; }
      touch "$3/pip"
    elif [ "$2" = pip ]; then
      [ -f "$(dirname "$0")/../pip" ] || {
        echo "$0: No module named pip" >&2; exit 1; }
      case " $* " in *' --dry-run '*)
        [ -n "${FAKE_PIP_HOLDS:-}" ]; exit ;;
      esac
      if [ "$3" = install ]; then
        echo "$*" >> "$FAKE_PIP_LOG"
        sleep "${FAKE_PIP_SLEEP:-0}"
        [ -z "${FAKE_PIP_FAILS:-}" ] || { echo 'pip: no network' >&2; exit 1; }
      fi
    fi ;;
esac
'''


def setup_env_copy(tmp_path):
    """A copy of the repository's files that setup_env.sh reads, with the
    stand-in interpreter; returns the copy's folder and the environment to
    run it with."""
    copy = tmp_path / 'repo'
    (copy / 'tools').mkdir(parents=True)
    shutil.copytree(REPO / 'requirements', copy / 'requirements')
    shutil.copy(REPO / 'setup.py', copy)
    shutil.copy(REPO / 'tools' / 'setup_env.sh', copy / 'tools')
    fake = tmp_path / 'python'
    fake.write_text(FAKE_VENV_PYTHON)
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake),
               FAKE_PIP_LOG=str(tmp_path / 'pip.log'))
    env.pop('VENV', None)
    return copy, env


def test_setup_env_sh_keeps_no_stamp_of_a_half_built_venv(tmp_path):
    """A build for other requirement files (another branch) that failed
    half-way left the stamp of the earlier files, so after a checkout
    back setup_env.sh returned at once, exit 0, on a .venv holding some
    packages of the failed build."""
    copy, env = setup_env_copy(tmp_path)
    log = tmp_path / 'pip.log'

    def setup(**extra):
        return subprocess.run(
            ['bash', str(copy / 'tools' / 'setup_env.sh')], cwd=tmp_path,
            env=dict(env, **extra), capture_output=True, text=True,
            timeout=60)

    assert setup().returncode == 0
    assert len(list((copy / '.venv').glob('.mmseg-dsnet-*'))) == 1
    runtime = copy / 'requirements' / 'runtime.txt'
    old = runtime.read_text()
    runtime.write_text(old + 'another-package\n')  # another branch's
    failed = setup(FAKE_PIP_FAILS='1')
    assert failed.returncode == 1 and 'pip: no network' in failed.stderr
    runtime.write_text(old)  # back to the first branch
    log.unlink()
    again = setup()
    assert again.returncode == 0, again.stderr
    # The packages were installed again, and the stamp is of the files now.
    assert log.exists() and 'requirements/runtime.txt' in log.read_text()
    assert len(list((copy / '.venv').glob('.mmseg-dsnet-*'))) == 1
    log.unlink()
    assert setup().returncode == 0 and not log.exists()


def test_setup_env_sh_reads_its_early_pins_from_the_requirements(tmp_path):
    """numpy (installed before mmcv's build), opencv-python and mmengine
    were pinned both in requirements/runtime.txt and in setup_env.sh: a
    change of one left the other, and the venv was built against one
    version, then re-installed with the other. Now the script reads them
    from runtime.txt, and refuses a runtime.txt that pins none."""
    copy, env = setup_env_copy(tmp_path)
    runtime = copy / 'requirements' / 'runtime.txt'
    text = runtime.read_text()
    assert 'numpy==1.26.4\n' in text
    runtime.write_text(text.replace('numpy==1.26.4', 'numpy==1.26.3'))
    done = subprocess.run(['bash', str(copy / 'tools' / 'setup_env.sh')],
                          cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    installs = (tmp_path / 'pip.log').read_text().splitlines()
    assert 'wheel numpy==1.26.3' in installs[0], installs
    assert 'opencv-python==4.11.0.86 mmengine==0.10.7' in installs[1]
    assert '1.26.4' not in '\n'.join(installs)
    runtime.write_text(text.replace('numpy==1.26.4\n', 'numpy\n'))
    refused = subprocess.run(['bash', str(copy / 'tools' / 'setup_env.sh')],
                             cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        'ERROR: requirements/runtime.txt pins no numpy'), refused.stderr


def test_setup_env_sh_installs_the_cpu_build_of_torch(tmp_path):
    """``torch==2.13.0`` was installed from PyPI, whose Linux wheel is the
    CUDA build (GBs of nvidia-* packages), under a step named ``torch
    2.13.0 (CPU)``. Now the CPU build is asked for, from PyTorch's CPU
    index unless pip's own sources (a local wheel store) hold it."""
    copy, env = setup_env_copy(tmp_path)
    log = tmp_path / 'pip.log'
    for holds, index in (('', ' --extra-index-url https://download.pytorch'
                          '.org/whl/cpu'), ('1', '')):
        shutil.rmtree(copy / '.venv', ignore_errors=True)
        log.unlink(missing_ok=True)
        done = subprocess.run(
            ['bash', str(copy / 'tools' / 'setup_env.sh')], cwd=tmp_path,
            env=dict(env, FAKE_PIP_HOLDS=holds), capture_output=True,
            text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert log.read_text().splitlines()[0] == (
            '-m pip install -q torch==2.13.0+cpu setuptools>=77,<81 wheel '
            f'numpy==1.26.4{index} --disable-pip-version-check')


def test_setup_env_sh_stops_at_a_failed_venv_and_makes_it_again(tmp_path):
    """``python -m venv`` failing (Debian without python3-venv: no
    ensurepip) left a .venv with a python and no pip; once the cause was
    fixed, every later call skipped the creation (the venv had a python)
    and failed with pip's ``No module named pip`` until .venv was removed
    by hand. A failed step also ended on its command's output, with no
    ERROR line."""
    copy, env = setup_env_copy(tmp_path)

    def setup(**extra):
        return subprocess.run(
            ['bash', str(copy / 'tools' / 'setup_env.sh')], cwd=tmp_path,
            env=dict(env, **extra), capture_output=True, text=True,
            timeout=60)

    failed = setup(FAKE_VENV_FAILS='1')
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert 'creating .venv: done' not in failed.stdout
    assert failed.stderr.splitlines()[-1] == (
        'ERROR: tools/setup_env.sh: creating .venv failed (exit 1, see '
        'above); .venv is not ready')
    assert failed.stderr.count('ERROR:') == 1
    assert not (tmp_path / 'pip.log').exists()
    assert not list((copy / '.venv').glob('.mmseg-dsnet-*'))
    again = setup()  # python3-venv installed
    assert again.returncode == 0, again.stdout + again.stderr
    assert 'creating .venv: done' in again.stdout
    assert len(list((copy / '.venv').glob('.mmseg-dsnet-*'))) == 1


def test_setup_env_sh_prepares_a_venv_once_at_a_time(tmp_path):
    """Two calls at once (two terminals, CI jobs or worktrees sharing one
    .venv): the second removed the first's stamp and ran pip in the same
    venv while the first did (each package installed twice, together)."""
    copy, env = setup_env_copy(tmp_path)
    env['FAKE_PIP_SLEEP'] = '0.5'
    log = tmp_path / 'pip.log'
    command = ['bash', str(copy / 'tools' / 'setup_env.sh')]
    first = subprocess.Popen(command, cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        for _ in range(300):  # the first is installing
            if log.exists():
                break
            time.sleep(0.1)
        second = subprocess.run(command, cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        out, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 0, out + err
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout == (
        '[setup_env] waiting for another setup_env.sh preparing .venv ...\n')
    installs = log.read_text().splitlines()
    assert len(installs) == len(set(installs)) == 5, installs
    assert len(list((copy / '.venv').glob('.mmseg-dsnet-*'))) == 1


def test_setup_env_sh_installs_again_a_package_not_as_pinned(tmp_path):
    """A later ``pip install`` in the venv that replaced a pinned package
    (numpy 2 here) kept the stamp, and ``import mmseg, mmcv.ops`` still
    passed, so setup_env.sh returned at once, exit 0: the tests and the
    demo ran on a stack other than the pinned one."""
    real = REPO / '.venv' / 'bin' / 'python'
    if not real.exists():
        pytest.skip('no .venv')
    copy, env = setup_env_copy(tmp_path)
    # The venv's python: the repository's .venv (read only: its pip is a
    # stand-in that logs; the check that skips mmcv's build passes), with
    # the packages of `meta` found first.
    meta = tmp_path / 'meta'
    meta.mkdir()
    log = tmp_path / 'pip.log'
    venv_python = copy / '.venv' / 'bin' / 'python'
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(
        '#!/bin/sh\n'
        f'if [ "$1 $2" = "-m pip" ]; then echo "$*" >> {log}; exit 0; fi\n'
        '[ "$1 $2" = "-c import mmcv.ops" ] && exit 0\n'
        f'PYTHONPATH={meta}${{PYTHONPATH:+:$PYTHONPATH}} exec {real} "$@"\n')
    venv_python.chmod(0o755)
    parts = sorted((copy / 'requirements').glob('*.txt')) + [
        copy / 'setup.py', copy / 'tools' / 'setup_env.sh']
    stamp = hashlib.sha1(b''.join(p.read_bytes() for p in parts)).hexdigest()
    (copy / '.venv' / f'.mmseg-dsnet-{stamp[:16]}').touch()

    def setup():
        return subprocess.run(
            ['bash', str(copy / 'tools' / 'setup_env.sh')], cwd=tmp_path,
            env=env, capture_output=True, text=True, timeout=120)

    ready = setup()
    assert ready.returncode == 0 and ready.stdout == '', ready.stderr
    assert not log.exists()
    numpy2 = meta / 'numpy-2.0.0.dist-info'
    numpy2.mkdir()
    (numpy2 / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: numpy\nVersion: 2.0.0\n')
    again = setup()
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[0] == (
        '[setup_env] not as pinned: numpy 2.0.0 (pinned: numpy==1.26.4)')
    assert 'numpy==1.26.4' in log.read_text()


@pytest.mark.parametrize('venv', ['absolute', 'envs/dsnet'])
def test_run_scripts_use_the_venv_setup_env_prepared(tmp_path, venv):
    """With VENV set, setup_env.sh prepared that environment, but
    run_tests.sh and run_demo.sh ran .venv/bin/python: an outdated .venv
    beside it (or none: ``No such file or directory``, exit 127)."""
    copy = tmp_path / 'repo'
    (copy / 'tools').mkdir(parents=True)
    for script in ('run_tests.sh', 'run_demo.sh'):
        shutil.copy(REPO / 'tools' / script, copy / 'tools')
    (copy / 'tools' / 'setup_env.sh').write_text('exit 0\n')  # a stand-in
    venv = str(tmp_path / 'venv') if venv == 'absolute' else venv
    prepared = Path(venv) if venv.startswith('/') else copy / venv
    for folder, name in ((copy / '.venv', 'outdated .venv'),
                         (prepared, 'VENV')):
        (folder / 'bin').mkdir(parents=True)
        (folder / 'bin' / 'python').write_text(
            f'#!/bin/sh\necho "{name}: $*"\n')
        (folder / 'bin' / 'python').chmod(0o755)
    for script, args in (('run_tests.sh',
                          '-m pytest -q -n auto --dist loadfile '
                          'tests/test_x.py'),
                         ('run_demo.sh',
                          f"{copy / 'tools' / 'demo.py'} tests/test_x.py")):
        done = subprocess.run(
            ['bash', str(copy / 'tools' / script), 'tests/test_x.py'],
            cwd=tmp_path, env=dict(os.environ, VENV=venv),
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f'VENV: {args}\n'


# Stands in for the device scripts' python: every run trains all its epochs
# and is tested; the sweep records its run.
FAKE_DEVICE_PYTHON = r'''#!/usr/bin/env bash
tool=$1; shift
case $tool in
  tools/fast_train.py)
    while [ "$1" != --work-dir ]; do shift; done
    mkdir -p "$2/run_seed0"; touch "$2/run_seed0/run.py" "$2/run_seed0/e.pth"
    echo "$2/run_seed0/e.pth" > "$2/run_seed0/last_checkpoint"
    echo '{"completed": true}' > "$2/run_seed0/fast_train.json" ;;
  tools/test.py)
    [ -z "${FAKE_TEST_FAILS:-}" ] || { echo 'Traceback ...'; exit 1; }
    echo 'IoU: 80.0  DSC: 88.9'; echo '{}' > "$4/test_metrics.json" ;;
  tools/analysis_tools/design_sweep.py)
    while [ "$1" != --work-dir ]; do shift; done
    mkdir -p "$2/cand_s0"; echo 'a log' > "$2/cand_s0/cand_s0.log"
    while [ "$1" != --record-dir ]; do shift; done
    mkdir -p "$2"; echo '{}' > "$2/cand_seed0.json"; echo 'cand_s0: done' ;;
esac
'''


def run_device_script(script, cwd, shell='bash', **env):
    """Runs tools/device/SCRIPT from cwd with SHELL and the stand-in
    python."""
    python = cwd / 'fake_python'
    python.write_text(FAKE_DEVICE_PYTHON)
    python.chmod(0o755)
    return subprocess.run(
        [shell, str(REPO / 'tools' / 'device' / script)], cwd=cwd,
        env=dict(os.environ, PYTHON=str(python), CALL_LIMIT='0', SEEDS='0',
                 **env), capture_output=True, text=True, timeout=60)


def test_protocol_script_tests_the_runs_of_an_out_with_spaces(tmp_path):
    """The run folders were split at spaces (``for dir in $ALL_DIRS``):
    with OUT=".../my out" the run was reported ``my: stopped, not tested``
    and ``out/runs: stopped, not tested``, nothing was tested, exit 0."""
    out = tmp_path / 'my out'
    done = run_device_script('isic2017_fast_protocol.sh', tmp_path,
                             OUT=str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (out / 'summary.txt').read_text()
    assert 'run_seed0: IoU: 80.0  DSC: 88.9' in summary
    assert 'not tested' not in summary
    assert (out / 'results.tar.gz').is_file() and not (out / 'runs').exists()


def test_protocol_script_counts_only_this_calls_test(tmp_path):
    """Runs put back in OUT/runs to go on with EXTRA=--resume hold the
    test_metrics.json of the call that tested them: a failed test now left
    it there, read as this call's, exit 0."""
    out = tmp_path / 'out'
    (out / 'runs' / 'run_seed0').mkdir(parents=True)
    (out / 'runs' / 'run_seed0' / 'test_metrics.json').write_text('{}')
    done = run_device_script('isic2017_fast_protocol.sh', tmp_path,
                             OUT=str(out), EXTRA='--resume',
                             FAKE_TEST_FAILS='1')
    assert done.returncode == 1, done.stdout + done.stderr
    assert ('run_seed0: tools/test.py failed (see test_output.txt)'
            in (out / 'summary.txt').read_text())


@pytest.mark.parametrize('script,archive', [
    ('isic2017_fast_protocol.sh', 'results.tar.gz'),
    ('design_screen.sh', 'records.tar.gz'),
])
def test_device_scripts_refuse_an_out_holding_an_earlier_call(
        tmp_path, script, archive):
    """A second call with the same OUT (a dry run repeated, the default
    work_dirs/device on a workstation) overwrote the first call's archive
    (its trained runs, its records) and appended to its summary, exit 0."""
    out = tmp_path / 'out'
    first = run_device_script(script, tmp_path, OUT=str(out),
                              WORK=str(tmp_path / 'work1'))
    assert first.returncode == 0, first.stdout + first.stderr
    kept = {p.name: p.read_bytes() for p in out.iterdir()}
    assert archive in kept
    second = run_device_script(script, tmp_path, OUT=str(out),
                               WORK=str(tmp_path / 'work2'))
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stderr.splitlines()[-1].startswith(
        f"ERROR: {out} holds an earlier call's ")
    assert second.stderr.count('ERROR:') == 1 and second.stdout == ''
    assert {p.name: p.read_bytes() for p in out.iterdir()} == kept
    assert not (tmp_path / 'work2').exists()


def test_design_screen_packs_the_logs_of_a_relative_out(tmp_path):
    """The logs were packed from within WORK, so the default (relative)
    OUT named a folder there: ``tar (child): work_dirs/device/logs.tar.gz:
    Cannot open``, no logs came back, exit 0."""
    done = run_device_script('design_screen.sh', tmp_path, OUT='out',
                             WORK=str(tmp_path / 'work'))
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'tar' not in done.stderr
    with tarfile.open(tmp_path / 'out' / 'logs.tar.gz') as logs:
        assert './cand_s0/cand_s0.log' in logs.getnames()
    assert (tmp_path / 'out' / 'records.tar.gz').is_file()

# Stands in for tar on a full disk: a cut archive, then a failure.
FAKE_FULL_DISK_TAR = r'''#!/bin/sh
[ "$1" = czf ] && echo cut > "$2"
echo 'tar: write error: No space left on device' >&2
exit 2
'''


@pytest.mark.parametrize('script,archive,folder', [
    ('isic2017_fast_protocol.sh', 'results.tar.gz', 'runs'),
    ('design_screen.sh', 'records.tar.gz', 'records'),
])
def test_device_scripts_fail_when_their_results_cannot_be_packed(
        tmp_path, script, archive, folder):
    """The archive is what comes back from the device; a failed tar (a full
    disk) left no archive (or a cut one) and the script ended with exit 0,
    its summary reading as a complete call."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('python', FAKE_DEVICE_PYTHON),
                       ('tar', FAKE_FULL_DISK_TAR)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHON=str(bin_dir / 'python'), OUT=str(out),
               CALL_LIMIT='0', WORK=str(tmp_path / 'work'), SEEDS='0')
    command = ['bash', str(REPO / 'tools' / 'device' / script)]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # with a working tar
    assert (out / archive).is_file() and not (out / folder).exists()
    shutil.rmtree(out)
    env['PATH'] = f'{bin_dir}:{env["PATH"]}'
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    error = (f'ERROR: could not pack {out / folder} into {archive} (see '
             f'above); the {folder} stay in {out / folder}')
    assert error in done.stderr.splitlines()
    assert error in (out / 'summary.txt').read_text()
    assert not (out / archive).exists() and (out / folder).is_dir()


# Stands in for tools/train.py under torchrun: each process records its pid;
# process 1 ends as FAIL says (process 0 runs until it is stopped, or, with
# 'user error, peer crash', crashes when process 1's connection closes, as
# a gloo collective does).
FAKE_TRAIN = r'''import os, signal, socket, sys, time
rank = os.environ['RANK']
fail = os.environ.get('FAIL')
peer = os.path.join(sys.argv[-1], 'peer.sock')
if fail == 'user error, peer crash':
    if rank == '0':
        server = socket.socket(socket.AF_UNIX)
        server.bind(peer + '.new')
        server.listen()
        os.rename(peer + '.new', peer)
    else:
        while not os.path.exists(peer):
            time.sleep(0.01)
        connection = socket.socket(socket.AF_UNIX)
        connection.connect(peer)
open(os.path.join(sys.argv[-1], f'pid_{rank}'), 'w').write(str(os.getpid()))
if fail == 'user error, peer crash':
    if rank == '0':
        connection = server.accept()[0]
        connection.recv(1)
        raise RuntimeError('Connection closed by peer')
    fail = 'user error'
if rank == '1':
    time.sleep(1)
    if fail == 'user error':
        print('ERROR: config file a.py: bad', file=sys.stderr, flush=True)
        sys.exit(2)
    if fail == 'killed':
        os.kill(os.getpid(), signal.SIGKILL)
    if fail == 'crash':
        raise RuntimeError('boom')
time.sleep(60)
'''


def start_dist_train(tmp_path, **env):
    """Starts tools/dist_train.sh of a copy of the repository whose
    train.py is FAKE_TRAIN, with 2 processes; returns the Popen."""
    copy = tmp_path / 'repo'
    (copy / 'tools').mkdir(parents=True)
    for script in ('dist_train.sh', 'launch_checks.sh'):
        shutil.copy(REPO / 'tools' / script, copy / 'tools')
    (copy / 'tools' / 'train.py').write_text(FAKE_TRAIN)
    (copy / 'mmseg_dsnet').symlink_to(REPO / 'mmseg_dsnet')
    (tmp_path / 'cfg.py').write_text('')
    full_env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
                    PORT=str(free_port()))
    for name in ('GPUS', 'NNODES', 'NODE_RANK', 'MASTER_ADDR', 'LOGLEVEL',
                 'PYTHONPATH'):
        full_env.pop(name, None)
    full_env.update(env)
    return subprocess.Popen(
        ['bash', str(copy / 'tools' / 'dist_train.sh'), 'cfg.py', '2',
         str(tmp_path)], cwd=tmp_path, env=full_env, stderr=subprocess.PIPE,
        text=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def stop_left_processes(tmp_path):
    """Kills the stand-in processes still running (none, when the launch
    stopped them); returns their ranks."""
    left = []
    for pid_file in tmp_path.glob('pid_*'):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
            left.append(pid_file.name[4:])
        except (ProcessLookupError, ValueError):
            pass
    return left


def run_dist_train(tmp_path, **env):
    """Runs tools/dist_train.sh as :func:`start_dist_train` to its end
    (two minutes at most); returns its exit status, its stderr and the
    ranks of the processes it left running (:func:`stop_left_processes`).
    """
    proc = start_dist_train(tmp_path, **env)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        left = stop_left_processes(tmp_path)
    return proc.returncode, err, left


@pytest.mark.parametrize('fail,status,line', [
    ('user error', 2, 'ERROR: config file a.py: bad'),
    ('killed', 137, 'ERROR: process 1 of train.py was ended by SIGKILL (out '
     'of memory?); torchrun stopped the others'),
    ('crash', 1, 'ERROR: process 1 of train.py failed with exit status 1 '
     '(see its output above); torchrun stopped the others'),
])
def test_dist_train_sh_ends_with_the_failed_process_status(
        tmp_path, fail, status, line):
    """torchrun ended every failure of a process with its ChildFailedError
    traceback (about 35 lines) and exit 1: a user error's ERROR line and
    status 2, or a process killed (out of memory), read as a crash."""
    status_given, err, left = run_dist_train(tmp_path, FAIL=fail)
    assert status_given == status, err
    assert err.splitlines()[-1] == line, err
    assert 'ChildFailedError' not in err and 'Root Cause' not in err
    assert err.count('ERROR:') == 1, err
    assert ('RuntimeError: boom' in err) == (fail == 'crash')
    assert left == []



def test_dist_train_sh_ends_with_the_user_error_not_the_crash_it_caused(
        tmp_path):
    """A process that refuses the user's input (a bad label only its batch
    holds: ``ERROR:`` line, status 2) closes its connections as it ends,
    and on gloo another process waiting in a collective crashes at once
    (``Connection closed by peer``, status 1). Where torchrun found both
    ended in one look, the crash of the lower rank was taken as the cause:
    exit 1 and a second ERROR line blaming it. The user error is now."""
    status, err, left = run_dist_train(tmp_path,
                                       FAIL='user error, peer crash')
    assert status == 2, err
    assert [line for line in err.splitlines() if 'ERROR:' in line] == [
        'ERROR: config file a.py: bad'], err
    assert 'RuntimeError: Connection closed by peer' in err
    assert left == []


def test_a_stopped_dist_train_sh_stops_its_processes_and_says_so(tmp_path):
    """SIGTERM to the script (``kill PID``) ended bash alone, exit 143,
    while torchrun and its processes trained on; torchrun stopped itself
    ended with a SignalException traceback and exit 1."""
    proc = start_dist_train(tmp_path)
    try:
        pid_files = [tmp_path / 'pid_0', tmp_path / 'pid_1']
        for _ in range(600):
            if all(p.exists() and p.read_text() for p in pid_files):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        left = stop_left_processes(tmp_path)
    assert left == [], 'processes went on after the launch was stopped'
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.splitlines()[-1] == (
        'ERROR: stopped by SIGTERM: the processes of train.py were stopped '
        'before they finished; the checkpoints saved before stay in the '
        'work dir; the same command with --resume goes on from the newest')
    assert 'Traceback' not in err, err


def test_dist_train_sh_on_a_port_in_use_is_one_error_line(tmp_path):
    """A second run on the same PORT (another run's torchrun listens there)
    ended in torchrun's DistNetworkError traceback (EADDRINUSE), exit 1."""
    with socket.socket() as taken:
        taken.bind(('', 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, err, left = run_dist_train(tmp_path, PORT=str(port))
    assert status == 2, err
    assert err == (f'ERROR: port {port} of 127.0.0.1 is in use (another '
                   'distributed run?): give another with PORT=...\n')
    assert left == [] and not list(tmp_path.glob('pid_*'))


def test_the_root_failure_is_the_first_process_not_stopped_by_torchrun():
    """Of torchrun's recorded failures, the process that failed first and
    was not stopped by torchrun (SIGTERM, or the tools' 143 after it) is
    the root; among the same second, a user error, then the lowest
    rank."""
    from types import SimpleNamespace as Failure

    from mmseg_dsnet.engine.torchrun import failure_message, root_failure
    assert root_failure({
        0: Failure(exitcode=-signal.SIGTERM, timestamp=100),
        1: Failure(exitcode=143, timestamp=100),
        3: Failure(exitcode=1, timestamp=102),
        2: Failure(exitcode=2, timestamp=101),
    }) == (2, 2)
    # Later failures of their own come after earlier ones, whatever rank.
    assert root_failure({
        0: Failure(exitcode=1, timestamp=105),
        4: Failure(exitcode=-signal.SIGKILL, timestamp=104),
    }) == (4, 137)
    assert root_failure({
        5: Failure(exitcode=1, timestamp=104),
        2: Failure(exitcode=3, timestamp=104),
    }) == (2, 3)
    # A user error before a crash of the same second (the crash it caused).
    assert root_failure({
        0: Failure(exitcode=1, timestamp=104),
        1: Failure(exitcode=2, timestamp=104),
    }) == (1, 2)
    # A user error of a later second did not cause an earlier crash.
    assert root_failure({
        0: Failure(exitcode=1, timestamp=103),
        1: Failure(exitcode=2, timestamp=104),
    }) == (0, 1)
    # Only stopped processes: the earliest of those.
    assert root_failure({
        0: Failure(exitcode=143, timestamp=107),
        1: Failure(exitcode=-signal.SIGTERM, timestamp=106),
    }) == (1, 143)
    assert failure_message(1, 128 + 99, 'tools/test.py') == (
        'process 1 of test.py was ended by signal 99; torchrun stopped the '
        'others')
    assert failure_message(0, 2, 'tools/train.py') is None


def test_the_failed_process_and_a_stopped_run_are_worded_by_their_status():
    """A SIGKILL is named with its usual cause; an exit status of 128 is
    a status, not a signal; a stopped training says how to go on, a
    stopped test does not."""
    from mmseg_dsnet.engine.cli_errors import TRAINING_STOP_HINT
    from mmseg_dsnet.engine.torchrun import (exit_status, failure_message,
                                             stopped_message)
    assert exit_status(-9) == 137 and exit_status(3) == 3
    assert failure_message(2, 137, 'tools/train.py') == (
        'process 2 of train.py was ended by SIGKILL (out of memory?); '
        'torchrun stopped the others')
    assert failure_message(0, 143, 'tools/test.py') == (
        'process 0 of test.py was ended by SIGTERM; torchrun stopped the '
        'others')
    assert failure_message(1, 128, 'tools/test.py') == (
        'process 1 of test.py failed with exit status 128 (see its output '
        'above); torchrun stopped the others')
    assert stopped_message(signal.SIGINT, 'tools/train.py') == (
        'stopped by SIGINT: the processes of train.py were stopped before '
        f'they finished; {TRAINING_STOP_HINT}')
    assert stopped_message(signal.SIGTERM, 'tools/test.py') == (
        'stopped by SIGTERM: the processes of test.py were stopped before '
        'they finished')
