"""Names `vulture` (run by `make lint`, 60% confidence, over core/ and tui/) reports as unused that
something outside core/ and tui/ uses: each line says who. Vulture reads this file as code that
uses these names; it is never imported. Framework hooks (Textual, watchdog, http.server,
importlib, textual-serve) are in ``ignore_names`` under [tool.vulture] in pyproject.toml.
Remove an entry when its user goes; add one only with its reason.
"""

# The Python API (chute.core.api, README "A Python API"): for scripts and orchestrators.
_.in_state  # RunResult.in_state(*states): the run's files in those states
_.raise_for_problems  # RunResult.raise_for_problems(); tests/test_api.py
_.held_only  # LoadProblems.held_only; tests/test_api.py
_.install  # tracing.install(provider): an application's own OpenTelemetry set-up; tests/test_tracing.py
_.uninstall  # tracing.uninstall(); tests/test_tracing.py, tests/test_hostile_ops.py

# Registered, not called by name: @register("csv", "tsv") etc. put them in core/formats' registry.
_._make  # core/formats/{delimited,ndjson,parquet}.py

# Written out by field name (dataclasses.asdict / as_dict), read by other processes.
_.vacuumed  # GcReport.vacuumed: `chute gc --json`, bench/ledger_gc.py
_.max_row  # recover.Found.max_row: max(_source_row) of the lineage query, built positionally

# Read by tests and benchmarks only.
_.STEPS  # failpoints.STEPS: tests/test_resources.py checks every named step is marked in the code
_.rows_written  # FleetMirror.rows_written: tests/test_fleet.py (a resend writes no rows)
_.drifted  # inspect.FileDetails.drifted: tests/test_tui_operator.py
_.sample_names  # metrics.sample_names: tests/test_metrics.py, tests/test_deploy.py
_.table_settings  # Target.table_settings: tests/test_deploy.py (engine and SETTINGS of a made table)
_.apply_seconds  # ChuteApp.apply_seconds: bench/console.py
_.took  # View.took: bench/console.py
_.seed_bulk  # tui/demo.seed_bulk: bench/console.py
_.warming  # MainScreen.warming: tests/test_tui_keys.py (waits for the hidden panes' warm-up)
_.watch_virtual_size  # AutoHeight.watch_virtual_size: Textual calls watch_<reactive> on a change
