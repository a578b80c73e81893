"""Command-line entry points (``python -m qkv_plugins.commands.<name>``);
``tools/`` holds thin scripts that call them."""
