"""What finprint does by day, never at night: evaluation, metrics, plots, labelled sets, fitting
verification, and reading a catalogue's decisions as training data.

The nightly index never imports this package (tests/test_runtime_without_torch.py checks it), so
its code can grow heavier without touching the cron job's start-up or dependencies.
"""
