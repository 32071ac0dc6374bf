"""sortnet.nas (neural architecture search), behind `sortnet search` and `sortnet.search(...)`: evolve layer specs
and training recipes with Optuna (NSGA-II or TPE). Not named `search`: that is the API function.

Modules: config (SearchConfig), genome (trial -> spec + recipe), trial (one fit per trial), latency
(1-image CPU latency), study (storage, sampler, pruner), leaderboard (tables, Pareto front, plot),
run (the search loop and `sortnet.search`); the `search` verb is sortnet/cli/search.py.

Usage:
    result = sortnet.search("digits", trials=20)            # or time_budget="10m"
    result.leaderboard[0]["spec"], result.best_model
"""
