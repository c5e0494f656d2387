"""The README's results table is the one generated from
results/leaderboard.json: any disagreement fails."""
import pytest
from conftest import REPO, load_tool

LEADERBOARD = REPO / 'results' / 'leaderboard.json'


@pytest.mark.skipif(not LEADERBOARD.is_file(),
                    reason='no results/leaderboard.json committed yet')
def test_readme_table_matches_leaderboard_json():
    leaderboard = load_tool('analysis_tools/leaderboard.py')
    # check() prints each mismatch and returns the exit status.
    assert leaderboard.check(str(REPO / 'README.md'), str(LEADERBOARD)) == 0
