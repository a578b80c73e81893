#!/usr/bin/env bash
# Is this node ready? PASS/FAIL per item, non-zero exit on any FAIL.
# Writes benchmarks/check-<device>.md and the layer / end-to-end tables.
# Usage: tools/check_node.sh [--items ...] [--small]
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
exec "${PYTHON:-python}" -m qkv_plugins.check --out-dir "$ROOT/benchmarks" \
    --config-root "$ROOT/configs" --tests-root "$ROOT/tests" \
    --dist-train "$ROOT/tools/dist_train.sh" "$@"
