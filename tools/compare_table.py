"""Compare a study table with a published one, bit for bit (exit 0 when
every run of the reference matches).

Example:
    python tools/compare_table.py work_dirs/study/table.csv benchmarks/study.csv
"""
from qkv_plugins.study.compare_tables import main

if __name__ == '__main__':
    main()
