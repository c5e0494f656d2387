"""One progress bar for the package's long loops."""
import sys


class _SilentBar:
    """Stands in for tqdm when it is absent or the bar is switched off."""

    def update(self, count=1):
        pass

    def close(self):
        pass

    @staticmethod
    def write(text):
        print(text, file=sys.stderr)


def progress_bar(total: int, desc: str, enabled: bool = True,
                 unit: str = 'img', file=None):
    """A tqdm bar on stderr, or a silent stand-in with the same
    ``update`` / ``close`` / ``write`` when ``enabled`` is False or tqdm
    is not installed (it is a runtime requirement; degrade quietly).
    ``file`` defaults to stderr."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None or not enabled:
        return _SilentBar()
    return tqdm(total=total, unit=unit, desc=desc, file=file or sys.stderr,
                dynamic_ncols=True)
