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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, NamedTuple, Sequence

from mmseg_dsnet.engine.preflight import check_output_file, check_work_dir
from mmseg_dsnet.progress import progress_bar
from mmseg_dsnet.utils.errors import UserError
from mmseg_dsnet.utils.messages import counted, first_few
from mmseg_dsnet.utils.paths import REPO_ROOT

from .real_data_check import (CONFIGS, check_no_earlier_check,
                              design_record_path, load_run_config,
                              run_device)

CHECK_TOOL = osp.join(REPO_ROOT, 'tools', 'check_real_data.py')
#: What check_real_data.py prints once it has written a run's record.
RECORD_LINE = 'Design record: '


class SweepJob(NamedTuple):
    """One design run: a model name of ``check_real_data.py --models`` or a
    config path, and a seed."""
    candidate: str
    seed: int

    @property
    def record_name(self) -> str:
        """The name ``check_real_data.py`` gives the run's record."""
        return osp.splitext(osp.basename(self.candidate))[0]

    @property
    def name(self) -> str:
        return f'{self.record_name}_s{self.seed}'


def sweep_jobs(candidates: Sequence[str],
               seeds: Sequence[int]) -> List[SweepJob]:
    """Every candidate with every seed, seed by seed: a sweep cut short
    still holds the same seeds of every candidate.

    Raises:
        FileNotFoundError: A candidate is neither a model name nor a file.
        ConfigFileError: A candidate file cannot be read as a config (a
            checkpoint given in its place, a syntax error, a missing
            ``_base_``) or is no whole one (a base config); each of its
            runs would fail when it starts.
        ValueError: Two runs of one name.
    """
    for candidate in candidates:
        if candidate in CONFIGS:
            continue
        if not osp.isfile(candidate):
            raise FileNotFoundError(
                f'{candidate} is neither a model name ({", ".join(CONFIGS)}) '
                'nor a config file')
        # Each run reads its config only when it starts, after the runs
        # before it, and failed with a traceback in its log.
        load_run_config(candidate, 'candidate config')
    jobs = [SweepJob(c, s) for s in seeds for c in candidates]
    names = [job.name for job in jobs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        # Two runs of one name would share a work dir at the same time.
        raise ValueError(f'runs named twice: {", ".join(twice)} (a seed or '
                         'a config stem given twice)')
    return jobs


def check_sweep_outputs(jobs: Sequence[SweepJob], work_dir: str,
                        record_dir: str, input_size: int, epochs: int,
                        device: str = None, train_images: int = None,
                        resume: bool = False,
                        resumable: bool = True) -> List[SweepJob]:
    """Refuse, before any run starts, outputs the runs could not write (each
    would fail only after its training) and runs that already have a
    record (a rerun, e.g. of a sweep cut short, adds a second record of
    that seed, which the design tables refuse).

    Args:
        jobs (Sequence[SweepJob]): The runs.
        work_dir (str): The sweep's work dir (created here).
        record_dir (str): Where the runs write their records.
        input_size (int): The runs' square input size.
        epochs (int): The runs' epochs.
        device (str, optional): The ``device`` their records will hold.
            Default: :func:`run_device` (where ``check_real_data.py``
            trains).
        train_images (int, optional): The images each run trains on
            (``--train-images``, or the whole design-train split), which a
            record's name does not hold: a record of another count is
            named as such. Default: None (not compared).
        resume (bool): The sweep continues one cut short
            (``design_sweep.py --resume``): a run's folder may hold its
            checkpoints, and the runs with a record are done. Default: False.
        resumable (bool): Whether the sweep can be resumed (the message
            about a folder with checkpoints offers ``--resume`` only then).
            Default: True.

    Returns:
        list[SweepJob]: The runs to start: all of ``jobs``, or with
        ``resume`` those without a record.

    Raises:
        WorkDirError: A folder that cannot be written, or a run's folder
            that holds an earlier run (:func:`.check_no_earlier_check`).
        UserError: Naming the runs whose record exists.
    """
    check_work_dir(work_dir)
    for job in jobs if not resume else ():
        # Each run refused it only when it started, its reason in its log.
        check_no_earlier_check(osp.join(work_dir, job.name),
                               [job.record_name], resumable)
    device = device or run_device()
    paths = [design_record_path(record_dir, job.record_name, input_size,
                                epochs, job.seed, device) for job in jobs]
    check_output_file(paths[0], '--record-dir')
    done = [path for path in paths if osp.exists(path)]
    other = [(path, held) for path in done
             for held in [_record_train_images(path)]
             if train_images is not None and held is not None
             and held != train_images]
    if other:
        # Else the refusal read as a rerun of this very sweep.
        raise UserError(
            f'{counted(len(other), "record")} at the paths of this '
            f'sweep\'s runs {"was" if len(other) == 1 else "were"} made with '
            f'another --train-images: '
            f'{first_few([f"{p} ({n} training images)" for p, n in other])}'
            f', and this sweep trains on {train_images}; a record\'s name '
            'does not hold the training images, so give this sweep another '
            '--record-dir')
    if resume:
        return [job for job, path in zip(jobs, paths) if path not in done]
    if done:
        if len(done) < len(paths):
            which = f'{len(done)} of the {len(paths)} runs'
        else:
            which = 'the run' if len(paths) == 1 else \
                f'all {len(paths)} runs'
        raise UserError(
            f'{which} {"has" if len(done) == 1 else "have"} a record '
            f'already: {", ".join(done)}; leave out their seeds (a rerun '
            'would add a second record of each), give another '
            '--record-dir' + (', or continue the sweep with --resume'
                              if resumable else ''))
    return list(jobs)


def _record_train_images(path):
    """The ``train_images`` a design record holds, None when it holds
    none or cannot be read (the refusal of an existing record stands)."""
    from .records import load_json
    try:
        held = load_json(path).get('train_images')
    except (OSError, ValueError, AttributeError):
        return None
    return held if isinstance(held, int) else None


def check_cpu_share(parallel: int, threads: int,
                    parallel_given: bool = True) -> int:
    """The runs at a time, refused when they would ask for more CPU threads
    than this process may run on: the runs would take turns on the CPUs,
    and each record's ``train_time_s`` (the design table's train time,
    which the report reads as the cost of a design) would be of that
    contention, while the record says nothing of it.

    Args:
        parallel (int): Runs at a time (``--parallel``).
        threads (int): CPU threads per run (``--threads``).
        parallel_given (bool): Whether ``parallel`` was asked for; the
            default is lowered to what the CPUs hold instead. Default: True.

    Returns:
        int: ``parallel``, or the default lowered to the usable CPUs.

    Raises:
        UserError: ``parallel * threads`` above the usable CPUs.
    """
    from mmseg_dsnet.analysis.benchmark import usable_cpus
    usable = usable_cpus()
    if not parallel_given:
        parallel = max(1, min(parallel, usable // threads))
    if parallel * threads > usable:
        raise UserError(
            f'--parallel {parallel} x --threads {threads} = '
            f'{parallel * threads} CPU threads, and this process may run on '
            f'{counted(usable, "CPU")} (its CPU affinity: taskset, a '
            'container\'s '
            'cpuset): the runs would take turns on them, and their records\' '
            'train times would be of that contention; give --parallel x '
            f'--threads up to {usable}')
    return parallel


def job_command(job: SweepJob, work_dir: str, check_args: Sequence[str]):
    """The ``check_real_data.py`` command line of ``job`` (it runs in the
    repository root, so paths are made absolute)."""
    which = (['--models', job.candidate] if job.candidate in CONFIGS else
             ['--configs', osp.abspath(job.candidate)])
    return [sys.executable, CHECK_TOOL, *which, '--seed', str(job.seed),
            '--work-dir', osp.abspath(osp.join(work_dir, job.name)),
            *check_args]


def open_new_log(work_dir: str, name: str):
    """Open ``<work_dir>/<name>.log`` for a run's output, or, when an earlier
    run of that name left it (a run that failed before its first
    checkpoint, started again), ``<name>_1.log``, ``<name>_2.log`` ... (as
    :func:`~mmseg_dsnet.engine.log_dir.claim_log_dir` names log folders):
    an earlier log, the only account of why its run failed, is kept.

    Args:
        work_dir (str): The sweep's work dir.
        name (str): The run's name.

    Returns:
        tuple[str, IO]: The log's path and the file, open for writing.
    """
    suffix = 0
    while True:
        log = osp.join(work_dir,
                       f'{name}_{suffix}.log' if suffix else f'{name}.log')
        try:
            # 'x': never onto a file there, even one made meanwhile.
            return log, open(log, 'x')
        except FileExistsError:
            suffix += 1


def run_sweep(jobs: Sequence[SweepJob], work_dir: str,
              check_args: Sequence[str], parallel: int, threads: int = 1,
              start_before_s: float = None) -> dict:
    """Run ``jobs``, ``parallel`` at a time, each with ``threads`` CPU
    threads; its output goes to ``<work_dir>/<job name>.log``
    (``<job name>_1.log`` ... when an earlier run left that,
    :func:`open_new_log`).

    Args:
        start_before_s (float, optional): Start no job later than this many
            seconds after the sweep began (the jobs then left are reported
            as not started). Default: None (start them all).

    Raises:
        KeyboardInterrupt, SystemExit: Passed on once the runs under way
            are stopped (terminated) and no other was started.

    Returns:
        dict: Job name -> ``'done'`` (the run wrote its record),
        ``'failed (..., see LOG)'`` or ``'not started'``.
    """
    os.makedirs(work_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    began = time.time()
    bar = progress_bar(len(jobs), 'design runs', unit='run')

    # Ctrl-C or SIGTERM stops the runs under way and starts no other: a
    # run left going would write its record after the sweep ended.
    stopping = threading.Event()
    running = set()
    lock = threading.Lock()

    def run(job):
        if stopping.is_set() or (start_before_s is not None and
                                 time.time() - began > start_before_s):
            return job.name, 'not started'
        log, out = open_new_log(work_dir, job.name)
        with out:
            with lock:
                if stopping.is_set():
                    return job.name, 'not started'
                proc = subprocess.Popen(
                    job_command(job, work_dir, check_args), stdout=out,
                    stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
                running.add(proc)
            code = proc.wait()
            with lock:
                running.discard(proc)
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

    pool = ThreadPoolExecutor(max_workers=parallel)
    try:
        statuses = dict(pool.map(run, jobs))
    except BaseException:
        with lock:
            stopping.set()
            for proc in running:
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        raise
    pool.shutdown()
    bar.close()
    return statuses
