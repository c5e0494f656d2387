"""The code a run was trained with: the commit of the git checkout that
tracks the package (mmseg_dsnet.utils.code_revision), as training logs name
it and ``leaderboard.py collect`` records it."""
import os
import subprocess

import pytest

from mmseg_dsnet.leaderboard.work_dir import code_revision_of
from mmseg_dsnet.utils.code_revision import code_revision

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@t',
               GIT_COMMITTER_NAME='t', GIT_COMMITTER_EMAIL='t@t')


def git(folder, *args):
    return subprocess.run(['git', '-C', str(folder), *args], check=True,
                          capture_output=True, text=True,
                          env=GIT_ENV).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A git checkout whose ``pkg`` folder is committed."""
    package = tmp_path / 'repo' / 'pkg'
    package.mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package.parent / 'config.py').write_text('lr = 1\n')
    git(package.parent, 'init', '-q')
    git(package.parent, 'add', '.')
    git(package.parent, 'commit', '-qm', 'first')
    return package


def test_a_clean_checkout_is_named_by_its_commit(checkout):
    head = git(checkout, 'rev-parse', 'HEAD')
    assert len(head) == 40
    assert code_revision(str(checkout)) == head
    # A file git does not track changes nothing the run used.
    (checkout / 'notes.txt').write_text('x')
    assert code_revision(str(checkout)) == head


def test_a_changed_tracked_file_anywhere_in_the_checkout_is_said(checkout):
    """A config beside the package counts as much as the package's code."""
    head = git(checkout, 'rev-parse', 'HEAD')
    (checkout.parent / 'config.py').write_text('lr = 2\n')
    assert code_revision(str(checkout)) == \
        f'{head} with uncommitted changes'


def test_a_package_no_checkout_tracks_is_unknown(tmp_path, checkout):
    """Installed from a wheel, or copied into a checkout without being
    added: no commit holds the code that runs."""
    loose = tmp_path / 'site-packages' / 'pkg'
    loose.mkdir(parents=True)
    (loose / '__init__.py').write_text('')
    untracked = checkout.parent / 'other'
    untracked.mkdir()
    (untracked / '__init__.py').write_text('')
    for folder in (loose, untracked):
        assert code_revision(str(folder)) == (
            'unknown (no git checkout tracks this package, or git cannot '
            'read it)')


def test_a_record_names_each_code_its_resumed_parts_ran():
    assert code_revision_of([dict(code='abc'), dict(code='abc')]) == 'abc'
    assert code_revision_of([dict(code='abc'), dict(code=None),
                             dict(code='def')]) == \
        'abc, not named in its log, def'
    # Logs from before the line existed: nothing to name.
    assert code_revision_of([dict(code=None), dict()]) is None
