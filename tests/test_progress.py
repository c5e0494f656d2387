"""The package's progress bar (mmseg_dsnet.progress): a tqdm bar on the
stream given, or a silent stand-in that still passes messages on."""
import io

from mmseg_dsnet.progress import progress_bar


def test_the_bar_counts_on_the_stream_it_is_given(capsys):
    out = io.StringIO()
    bar = progress_bar(4, 'checking', unit='case', file=out)
    bar.update()
    bar.update(2)
    bar.close()
    shown = out.getvalue()
    assert 'checking:' in shown and '3/4' in shown and 'case/s' in shown
    # Nothing of it on the process's own streams.
    assert capsys.readouterr() == ('', '')


def test_a_bar_switched_off_prints_no_bar_but_passes_messages_on(capsys):
    out = io.StringIO()
    bar = progress_bar(4, 'checking', enabled=False, file=out)
    bar.update(3)
    bar.write('one case failed')
    bar.close()
    assert out.getvalue() == ''
    # Messages go where the bar would be (stderr), not into the results
    # a tool prints on stdout.
    assert capsys.readouterr() == ('', 'one case failed\n')
