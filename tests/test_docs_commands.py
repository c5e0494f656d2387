"""The documentation's links and commands point at what exists.

Every relative link of README.md, docs/, the model card and results/ leads
to a file, and an anchor to a heading of it; every ``python tools/...`` /
``bash tools/...`` command in those pages (tables aside), in the tools'
docstrings and in tools/device/*.sh names an existing tool, only options
that tool defines and only configs and checkpoints that exist; every test
cited as a proof (``test_x.py::name``) exists; every tool's ``--help`` says
what it does in whole sentences.
"""
import ast
import re
from pathlib import Path

import pytest
from conftest import run_tool_in_process

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO / 'README.md', *(REPO / 'docs').glob('*.md'),
                *(REPO / 'configs').rglob('*.md'),
                *(REPO / 'results').rglob('*.md')])
TOOLS = sorted(p for p in (REPO / 'tools').rglob('*.py')
               if '__main__' in p.read_text())
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
COMMAND = re.compile(r'(?:python|bash)\s+(tools/[\w/.-]+\.(?:py|sh))'
                     r'([^\n`|]*)')
# Paths a command reads from the repository (outputs and placeholders such
# as work_dirs/..., CONFIG or data/isic2017 are not checked).
REPO_PATH = re.compile(r'(?<![\w/.-])((?:configs|checkpoints)/[\w/.@,*<>-]+)')


def _rel(path):
    return str(path.relative_to(REPO))


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def _anchors(page):
    anchors, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith('```'):
            fenced = not fenced
        match = re.match(r'#{1,6}\s+(.*)', line)
        if match and not fenced:
            slug, n = _slug(match.group(1)), 0
            anchor = slug
            while anchor in anchors:  # a repeated heading gets -1, -2 ...
                n += 1
                anchor = f'{slug}-{n}'
            anchors.add(anchor)
    return anchors


def _broken_links(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r'[a-z]+:', target):  # https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        linked = (page.parent / path) if path else page
        if not linked.exists():
            broken.append(f'{target} (no such file)')
        elif anchor and linked.suffix == '.md' and \
                anchor not in _anchors(linked):
            broken.append(f'{target} (no such heading in {linked.name})')
    return broken


@pytest.mark.parametrize('page', PAGES, ids=_rel)
def test_relative_links_and_anchors_resolve(page):
    assert _broken_links(page) == [], _rel(page)


def test_the_link_check_sees_a_missing_file_and_anchor(tmp_path):
    (tmp_path / 'other.md').write_text('# A heading: with `code`\n')
    page = tmp_path / 'page.md'
    page.write_text('[ok](other.md#a-heading-with-code) [self](#top)\n'
                    '# Top\n[gone](missing.md) [bad](other.md#nope)\n')
    assert _broken_links(page) == [
        'missing.md (no such file)',
        'other.md#nope (no such heading in other.md)']


def _documented_commands():
    """(where, tool, rest of the line) of every tool command shown."""
    # Table rows are left out: those of docs/reliability.md show wrong
    # inputs on purpose.
    sources = {_rel(p): '\n'.join(line for line in p.read_text().split('\n')
                                   if not line.startswith('|'))
               for p in PAGES}
    for tool in TOOLS:
        sources[_rel(tool)] = ast.get_docstring(
            ast.parse(tool.read_text())) or ''
    for script in sorted((REPO / 'tools').rglob('*.sh')):
        sources[_rel(script)] = script.read_text()
    for where, text in sources.items():
        # Shell continuations, and flags continued on an indented line.
        text = re.sub(r'\\\n\s*', ' ', text)
        text = re.sub(r'\n\s{4,}(?=\[?--)', ' ', text)
        for tool, rest in COMMAND.findall(text):
            yield where, tool, rest


_HELP = {}


def _help_text(tool, rest):
    """The ``--help`` of ``tool``, of its subcommand where ``rest`` starts
    with one (``leaderboard.py collect``): the options it takes. A quoted
    ``'--option'`` in its source is not enough (infer.py names the
    converter's ``--strict`` in a message)."""
    words = rest.split()
    sub = words[0] if words and re.fullmatch(r'[a-z]+', words[0]) else None
    if (tool, sub) not in _HELP:
        result = run_tool_in_process(tool, *([sub] if sub else []), '--help')
        _HELP[tool, sub] = result.stdout if result.returncode == 0 else ''
    return _HELP[tool, sub]


def _command_problems(where, tool, rest):
    """What a documented command names that does not exist."""
    script = REPO / tool
    if not script.is_file():
        return [f'{where}: {tool} does not exist']
    problems = []
    if script.suffix == '.py':
        for option in re.findall(r'(?<![\w-])(--[a-z][\w-]*)', rest):
            if not re.search(re.escape(option) + r'(?![\w-])',
                             _help_text(tool, rest)):
                problems.append(f'{where}: {tool} has no {option}')
    for path in REPO_PATH.findall(rest):
        path = path.split('@')[0].rstrip('.,')
        if not re.search(r'[*<>]', path) and not (REPO / path).exists():
            problems.append(f'{where}: {tool} ... {path} does not exist')
    return problems


def test_documented_commands_use_existing_tools_options_and_files():
    commands = list(_documented_commands())
    assert len(commands) > 50  # the pages hold that many
    problems = [problem for command in commands
                for problem in _command_problems(*command)]
    assert problems == []


def test_the_command_check_sees_a_missing_tool_option_and_config():
    assert _command_problems('p', 'tools/nope.py', '') == [
        'p: tools/nope.py does not exist']
    assert _command_problems(
        'p', 'tools/infer.py', ' configs/dsnet/nope.py x photos/ '
        '--out-dir o --no-such-option  # configs/dsnet/dsnet_isic2017.py'
    ) == ['p: tools/infer.py has no --no-such-option',
          'p: tools/infer.py ... configs/dsnet/nope.py does not exist']
    # An option the tool only names in a message (the converter's), and
    # one of another subcommand of the same tool.
    assert _command_problems('p', 'tools/infer.py', ' photos/ --strict') == [
        'p: tools/infer.py has no --strict']
    assert _command_problems(
        'p', 'tools/analysis_tools/leaderboard.py',
        ' build --readme README.md --no-benchmark') == [
        'p: tools/analysis_tools/leaderboard.py has no --no-benchmark']


def _help_description(text):
    """The description argparse prints between the usage and the
    arguments, whitespace collapsed ('' when there is none)."""
    blocks = text.split('\n\n')
    if len(blocks) < 2 or re.match(r'(positional arguments|options):',
                                   blocks[1]):
        return ''
    return ' '.join(blocks[1].split())


@pytest.mark.parametrize('tool', TOOLS, ids=_rel)
def test_help_description_is_not_cut_mid_sentence(tool):
    """A description taken from the docstring's first line stopped
    mid-sentence (check_real_data.py: '... and run a')."""
    result = run_tool_in_process(tool, '--help')
    assert result.returncode == 0, result.stderr
    description = _help_description(result.stdout)
    doc = ast.get_docstring(ast.parse(tool.read_text())) or ''
    first_line = ' '.join(doc.split('\n')[0].split())
    paragraph = ' '.join(doc.split('\n\n')[0].split())
    assert description, result.stdout
    # The docstring's first line alone, where its sentence goes on.
    assert description != first_line or paragraph == first_line, description


#: Options whose --help said what they do but not their default (or
#: nothing at all), per tool and subcommand.
OPTIONS_WITH_DEFAULTS = {
    ('tools/dataset_converters/make_synthetic_isic.py', None): [
        '--year', '--num-train', '--num-val', '--num-test', '--size',
        '--seed'],
    ('tools/analysis_tools/benchmark.py', None): [
        '--device', '--batch-size', '--warmup', '--repeat',
        '--throughput-repeat'],
    ('tools/analysis_tools/cpu_latency.py', None): [
        '--repeat', '--max-seconds', '--min-runs', '--rounds', '--warmup',
        '--checkpoint', '--skip'],
    ('tools/analysis_tools/design_table.py', None): [
        '--device', '--min-gain', '--se-factor'],
    ('tools/analysis_tools/error_by_position.py', None): ['--rings',
                                                          '--worst'],
    ('tools/analysis_tools/threshold_sweep.py', None): ['--min-gain',
                                                        '--se-factor'],
    ('tools/analysis_tools/recalibrate_batch_norm.py', None): ['--seed'],
    ('tools/analysis_tools/leaderboard.py', 'collect'): ['--runs-dir'],
    ('tools/analysis_tools/leaderboard.py', 'build'): [
        '--out-dir', '--readme', '--model-card'],
    ('tools/analysis_tools/leaderboard.py', 'check'): [
        '--readme', '--model-card', '--leaderboard'],
    ('tools/analysis_tools/leaderboard.py', 'run'): ['--seeds',
                                                     '--checkpoint'],
    ('tools/deployment/export_onnx.py', None): ['--atol', '--rtol',
                                                '--noise-factor'],
    ('tools/fast_train.py', None): ['--warmup-iters', '--workers'],
    ('tools/infer.py', None): ['--device'],
    ('tools/test.py', None): ['--wait-time'],
    ('tools/demo.py', None): ['--epochs'],
    ('tools/check_real_data.py', None): ['--split', '--train-images',
                                         '--test-images', '--lr'],
}


@pytest.mark.parametrize('tool,sub', sorted(OPTIONS_WITH_DEFAULTS,
                                            key=str))
def test_help_says_the_default_of_each_option(tool, sub, monkeypatch):
    """These options' --help gave no default (make_synthetic_isic.py's
    and some of leaderboard.py's no help at all): a reader had to open
    the source to learn what a run without them does."""
    monkeypatch.setenv('COLUMNS', '200')  # one line an option
    result = run_tool_in_process(tool, *([sub] if sub else []), '--help')
    assert result.returncode == 0, result.stderr
    helps = {block.split()[0].rstrip(','): ' '.join(block.split())
             for block in re.split(r'\n  (?=-)', result.stdout)[1:]}
    missing = [option for option in OPTIONS_WITH_DEFAULTS[tool, sub]
               if 'default' not in helps[option].lower()]
    assert missing == []


CITED_TEST = re.compile(r'(?:(test_\w+\.py)|`)::(\w+)')


def _missing_cited_tests(text, tests_dir):
    """The ``test_x.py::name`` (and ``::name`` after it on the same line)
    citations of ``text`` whose file or test function does not exist."""
    missing = []
    for line in text.splitlines():
        current = None
        for path, name in CITED_TEST.findall(line):
            current = path or current
            test_file = tests_dir / current if current else None
            if test_file is None or not test_file.is_file():
                missing.append(f'{current}::{name} (no such file)')
            elif not re.search(rf'^\s*(?:async )?def {name}\b|^class {name}\b',
                               test_file.read_text(), re.M):
                missing.append(f'{current}::{name}')
    return missing


@pytest.mark.parametrize('page', PAGES, ids=_rel)
def test_cited_tests_exist(page):
    """A page that cites a test as its proof names one that exists."""
    assert _missing_cited_tests(page.read_text(), REPO / 'tests') == [], \
        _rel(page)


def test_the_cited_test_check_sees_a_missing_test(tmp_path):
    (tmp_path / 'test_a.py').write_text('def test_here():\n    pass\n')
    text = ('`test_a.py::test_here`, `::test_gone` | `test_b.py::test_x`\n'
            '`test_a.py::test_here`\n')
    assert _missing_cited_tests(text, tmp_path) == [
        'test_a.py::test_gone', 'test_b.py::test_x (no such file)']
