"""The embedded study: sweep, table, demo (the data generator is
:mod:`qkv_plugins.data`).
Config paths come in as arguments; nothing here reads ``configs/`` or runs
``tools/`` by path."""
