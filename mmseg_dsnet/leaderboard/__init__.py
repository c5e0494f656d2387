"""The leaderboard: run records read from work dirs, aggregated over seeds
and rendered as JSON, CSV, Markdown, a plot and the generated blocks of
the README and the model card.

- :mod:`.records`: reading and writing the JSON records (the
  ``test_metrics.json`` of a test, the run records of ``results/runs/``);
- :mod:`.work_dir`: what a work dir says about its run (logs, dumped config,
  metrics);
- :mod:`.board`: collect a run record, build the leaderboard files, check
  the generated blocks against them;
- :mod:`.table`: aggregation and rendering; :mod:`.blocks`: the README's
  and the model card's blocks; :mod:`.plot`: the figure (matplotlib);
- :mod:`.design`: the table of the design runs.

The command line is ``tools/analysis_tools/leaderboard.py``.
"""
