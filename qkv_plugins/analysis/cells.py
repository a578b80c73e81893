"""Table cells shared by the Markdown reports."""


def cell(value, spec: str = '.1f', error: str = '') -> str:
    """``error`` if any, ``-`` for a missing value, else ``value`` formatted."""
    return error or ('-' if value is None else format(value, spec))
