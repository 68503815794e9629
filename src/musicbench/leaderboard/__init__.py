"""``mb-leaderboard``: the systems of many run folders (and museval result folders) in one table.

- :mod:`.load`: find run folders (paths, globs, sweeps) and read their summary, per-track results, config;
- :mod:`.systems`: group runs into rows (seed runs of one config, baselines, oracles), config differences;
- :mod:`.stats`: aggregates, quartiles, bootstrap confidence intervals, Wilcoxon tests, Holm's correction;
- :mod:`.table`: the leaderboard (cells of statistics per row and source × metric);
- :mod:`.render`: rich, Markdown, CSV, HTML; :mod:`.plots`: box + strip plots; :mod:`.cli`: the command.
"""
