"""Model analysis: FLOPs and parameters (:mod:`.flops`), latency and
throughput (:mod:`.benchmark`), errors by position in the image
(:mod:`.error_position`), threshold sweeps (:mod:`.threshold_sweep`) and
their figures (:mod:`.plots`); used by ``tools/analysis_tools``."""
from .benchmark import benchmark, compare_deploy
from .error_position import ErrorByPosition, error_table
from .flops import get_flops

__all__ = [
    'benchmark', 'compare_deploy', 'get_flops', 'ErrorByPosition',
    'error_table'
]
