"""Model analysis: FLOPs and parameters (:mod:`.flops`), latency and
throughput (:mod:`.benchmark`); used by ``tools/analysis_tools``."""
from .benchmark import benchmark, compare_deploy
from .flops import get_flops

__all__ = ['benchmark', 'compare_deploy', 'get_flops']
