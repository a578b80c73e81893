"""The embedded study: data generator (``synthetic``), sweep, table, demo.
Config paths come in as arguments; nothing here reads ``configs/`` or runs
``tools/`` by path."""
