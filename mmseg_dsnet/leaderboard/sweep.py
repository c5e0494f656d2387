"""Several design runs in parallel: one ``tools/check_real_data.py``
process per (candidate, seed), a few at a time. On the 2-core CPU that is
two runs with one thread each. Processes on one GPU time-slice it: twelve
design runs at a time on an H200 took about 380 s each, so keep a GPU sweep
to a few processes. The command line is
``tools/analysis_tools/design_sweep.py``."""
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, NamedTuple, Sequence

from mmseg_dsnet.progress import progress_bar
from mmseg_dsnet.utils.paths import REPO_ROOT

from .real_data_check import CONFIGS

CHECK_TOOL = osp.join(REPO_ROOT, 'tools', 'check_real_data.py')
#: What check_real_data.py prints once it has written a run's record.
RECORD_LINE = 'Design record: '


class SweepJob(NamedTuple):
    """One design run: a model name of ``check_real_data.py --models`` or a
    config path, and a seed."""
    candidate: str
    seed: int

    @property
    def name(self) -> str:
        stem = osp.splitext(osp.basename(self.candidate))[0]
        return f'{stem}_s{self.seed}'


def sweep_jobs(candidates: Sequence[str],
               seeds: Sequence[int]) -> List[SweepJob]:
    """Every candidate with every seed, seed by seed: a sweep cut short
    still holds the same seeds of every candidate."""
    for candidate in candidates:
        if candidate not in CONFIGS and not osp.isfile(candidate):
            raise FileNotFoundError(
                f'{candidate} is neither a model name ({", ".join(CONFIGS)}) '
                'nor a config file')
    jobs = [SweepJob(c, s) for s in seeds for c in candidates]
    names = [job.name for job in jobs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        # Two runs of one name would share a work dir at the same time.
        raise ValueError(f'runs named twice: {", ".join(twice)} (a seed or '
                         'a config stem given twice)')
    return jobs


def job_command(job: SweepJob, work_dir: str, check_args: Sequence[str]):
    """The ``check_real_data.py`` command line of ``job``."""
    which = (['--models', job.candidate] if job.candidate in CONFIGS else
             ['--configs', job.candidate])
    return [sys.executable, CHECK_TOOL, *which, '--seed', str(job.seed),
            '--work-dir', osp.join(work_dir, job.name), *check_args]


def run_sweep(jobs: Sequence[SweepJob], work_dir: str,
              check_args: Sequence[str], parallel: int, threads: int = 1,
              start_before_s: float = None) -> dict:
    """Run ``jobs``, ``parallel`` at a time, each with ``threads`` CPU
    threads; its output goes to ``<work_dir>/<job name>.log``.

    Args:
        start_before_s (float, optional): Start no job later than this many
            seconds after the sweep began (the jobs then left are reported
            as not started). Default: None (start them all).

    Returns:
        dict: Job name -> ``'done'`` (the run wrote its record),
        ``'failed (..., see LOG)'`` or ``'not started'``.
    """
    os.makedirs(work_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    began = time.time()
    bar = progress_bar(len(jobs), 'design runs', unit='run')

    def run(job):
        if start_before_s is not None and (time.time() - began >
                                           start_before_s):
            return job.name, 'not started'
        log = osp.join(work_dir, f'{job.name}.log')
        with open(log, 'w') as out:
            code = subprocess.call(
                job_command(job, work_dir, check_args), stdout=out,
                stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        bar.update()
        with open(log) as out:
            wrote_record = RECORD_LINE in out.read()
        if code != 0:
            status = f'failed (exit {code}, see {log})'
        elif not wrote_record:
            # check_real_data.py exits 0 with SKIP when the data is absent.
            status = f'failed (no design record written, see {log})'
        else:
            status = 'done'
        bar.write(f'{job.name}: {status} after {time.time() - began:.0f} s')
        return job.name, status

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        statuses = dict(pool.map(run, jobs))
    bar.close()
    return statuses
