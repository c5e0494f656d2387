"""Advice in messages works: every ``tools/<tool>.py ... --option`` that a
message (or any string) of the package or the tools names is an existing
tool with that option, and the messages whose advice did not work now give
advice that does."""
import ast
import json
import re
import struct
import zlib
from pathlib import Path

import pytest
from conftest import load_tool, run_cli

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / 'mmseg_dsnet').rglob('*.py'),
                  *(REPO / 'tools').rglob('*.py')])
TOOL = re.compile(r'(?<![\w/.-])(tools/[\w/.-]+\.(?:py|sh))')
OPTION = re.compile(r'(?<![\w-])(--[a-z][\w-]*)')
# Where the command a string names ends: its options come before the end
# of the clause (another tool, "and pass --x" of the tool that prints it).
CLAUSE_END = re.compile(r'[;\n)]|,\s|\.(?:\s|$)|\s(?:and|or|but|then|which|'
                        r'so|not)\s|tools/')


def _strings(source):
    """(line, text) of every string literal of ``source``; an f-string is
    one text with ``{}`` for each replacement field."""
    tree = ast.parse(source)
    in_fstring = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            in_fstring.update(id(value) for value in node.values)
            yield node.lineno, ''.join(
                value.value if isinstance(value, ast.Constant) else '{}'
                for value in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in in_fstring:
            yield node.lineno, node.value


def _tool_options(script):
    """The ``--options`` a tool's parser(s) define (read from its
    ``add_argument`` calls: importing or running every tool takes long)."""
    options = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and \
                getattr(node.func, 'attr', '') == 'add_argument':
            options.update(arg.value for arg in node.args
                           if isinstance(arg, ast.Constant)
                           and str(arg.value).startswith('--'))
    return options


def _advice_problems(where, text, repo=REPO, options_of=None):
    """What the tool commands named in ``text`` get wrong."""
    options_of = {} if options_of is None else options_of
    problems = []
    # Shell continuations, and flags continued on an indented line.
    text = re.sub(r'\\\n\s*', ' ', text)
    text = re.sub(r'\n\s{4,}(?=\[?--)', ' ', text)
    for match in TOOL.finditer(text):
        tool = match.group(1)
        script = repo / tool
        if not script.is_file():
            problems.append(f'{where}: {tool} does not exist')
            continue
        if script.suffix != '.py':
            continue
        if tool not in options_of:
            options_of[tool] = _tool_options(script)
        rest = text[match.end():]
        end = CLAUSE_END.search(rest)
        for option in OPTION.findall(rest[:end.start()] if end else rest):
            if option not in options_of[tool]:
                problems.append(f'{where}: {tool} has no {option}')
    return problems


def test_tool_commands_in_strings_name_existing_tools_and_options():
    """Messages said e.g. ``run tools/check_real_data.py --split design``;
    a tool moved or an option renamed leaves advice that fails."""
    options_of, problems, mentions = {}, [], 0
    for path in SOURCES:
        for line, text in _strings(path.read_text()):
            mentions += len(TOOL.findall(text))
            problems += _advice_problems(
                f'{path.relative_to(REPO)}:{line}', text,
                options_of=options_of)
    assert mentions > 100  # the sources name tools that often
    assert problems == []


def test_the_advice_check_sees_a_missing_tool_and_option():
    source = (
        "raise UserError(f'{x} exists; run tools/nope.py, or "
        "python tools/infer.py A B --out-dir O --no-such {y}; "
        "tools/test.py --tta and pass --gone to this tool')\n")
    problems = [problem for line, text in _strings(source)
                for problem in _advice_problems(f'm.py:{line}', text)]
    assert problems == ['m.py:1: tools/nope.py does not exist',
                        'm.py:1: tools/infer.py has no --no-such']


def _png_header(path, width, height):
    """A PNG whose header says ``width`` x ``height`` (no pixel data: the
    size check reads the header only)."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data)))

    path.write_bytes(
        b'\x89PNG\r\n\x1a\n' +
        chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
        + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))
    return str(path)


def test_pixel_limit_names_max_pixels_only_where_the_tool_has_it(tmp_path):
    """``export_onnx.py ... --check-images big.png`` (an image of more than
    10000 x 10000 pixels) said ``raise it with --max-pixels``, an option
    only infer.py has (export_onnx.py stops at it: unrecognized
    arguments); the reader's message names no option now."""
    from mmseg_dsnet.deploy.parity import explicit_check_pairs
    from mmseg_dsnet.image_io import PixelLimitError, read_image
    from mmseg_dsnet.utils.errors import UserError
    big = _png_header(tmp_path / 'big.png', 10001, 10000)
    with pytest.raises(PixelLimitError) as err:
        read_image(big)
    assert str(err.value) == (f'{big}: 10001x10000 = 100010000 pixels is '
                              'above the limit of 100000000 pixels')
    with pytest.raises(UserError) as err:
        explicit_check_pairs([big])
    assert 'above the limit of 100000000 pixels' in str(err.value)
    assert '--max-pixels' not in str(err.value)


def test_no_val_cfg_advice_names_every_validation_key(tiny_config, tmp_path,
                                                      capsys):
    """``train.py CONFIG --cfg-options val_cfg=None`` was told to set
    ``default_hooks.checkpoint.save_best=None``; doing so ended in
    mmengine's ValueError traceback (val_dataloader and val_evaluator still
    set), exit 1. The advice names all three keys, and a config with only
    some of them None is refused before the work dir is made."""
    from mmseg_dsnet.engine import check_save_best, check_val_keys_together
    from mmseg_dsnet.utils.errors import UserError
    work = tmp_path / 'work'
    train = load_tool('train.py').main
    code, err = run_cli(train, [tiny_config, '--work-dir', work,
                                '--cfg-options', 'val_cfg=None'], capsys)
    assert (code, err) == (2, (
        "ERROR: default_hooks.checkpoint.save_best='IoU' keeps the "
        'checkpoint that validates best, but the config sets no val_cfg, '
        'so the run would never validate and save no best checkpoint; set '
        'default_hooks.checkpoint.save_best=None val_dataloader=None '
        'val_evaluator=None to train without one, or let the run '
        'validate\n'))
    code, err = run_cli(train, [
        tiny_config, '--work-dir', work, '--cfg-options', 'val_cfg=None',
        'default_hooks.checkpoint.save_best=None'], capsys)
    assert (code, err) == (2, (
        'ERROR: val_cfg is None but val_dataloader and val_evaluator are '
        'set: mmengine trains with validation only when all three are set, '
        'and without it only when all three are None; set '
        'val_dataloader=None val_evaluator=None to train without '
        'validation, or set val_cfg\n'))
    assert not work.exists()
    # All three None (the advice) or all set pass; a save_best that never
    # validates for another reason is told only to drop save_best.
    check_val_keys_together(dict(val_dataloader=None, val_cfg=None,
                                 val_evaluator=None))
    check_val_keys_together(dict(val_dataloader={}, val_cfg={},
                                 val_evaluator={}))
    with pytest.raises(UserError, match=(
            '^val_cfg, val_evaluator are None but val_dataloader is set: ')):
        check_val_keys_together(dict(val_dataloader={}, val_cfg=None,
                                     val_evaluator=None))
    with pytest.raises(UserError, match=r'set default_hooks\.checkpoint\.'
                       r'save_best=None to train without one'):
        check_save_best(dict(
            default_hooks=dict(checkpoint=dict(save_best='IoU')),
            val_cfg=dict(type='ValLoop'), val_dataloader={},
            val_evaluator={}, train_cfg=dict(max_epochs=2, val_begin=5)))


def test_design_split_advice_reconverts_the_set_as_it_was_converted(
        tmp_path, capsys):
    """``check_real_data.py --data-root OLD --split design`` of a set
    converted (from another download, with --seed 3) before the design
    split existed said ``isic.py <the default --src> OLD --overwrite``:
    another download, or the same with seed 0, whose splits differ. It
    names the set's own source and seed now."""
    root = tmp_path / 'old'
    root.mkdir()
    (root / 'meta.json').write_text(json.dumps(
        dict(source='/data/raw/../raw/isic2017', seed=3, year=2017)))
    code, err = run_cli(load_tool('check_real_data.py').main, [
        '--data-root', str(root), '--split', 'design', '--work-dir',
        str(tmp_path / 'work')], capsys)
    assert (code, err) == (2, (
        f'ERROR: {root} has no splits/lightweight_design_val.txt; it was '
        'converted by an older converter. Convert it again: python '
        f'tools/dataset_converters/isic.py /data/raw/isic2017 {root} '
        '--year 2017 --seed 3 --overwrite\n'))
    assert not (tmp_path / 'work').exists()
