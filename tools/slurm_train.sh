#!/usr/bin/env bash
# Usage: [GPUS=8] tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options]
#   GPUS           tasks (one process per GPU; on CPU nodes, processes)   [4]
#   GPUS_PER_NODE  GPUs (and tasks) per node; 0 on CPU nodes: no --gres   [4]
#   TASKS_PER_NODE tasks per node                 [GPUS_PER_NODE, or GPUS if 0]
#   CPUS_PER_TASK  --cpus-per-task                                        [5]
#   SRUN_ARGS      more srun options;  PYTHON  the interpreter         [python]
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
if [ "${GPUS_PER_NODE}" -gt 0 ]; then
    GRES="--gres=gpu:${GPUS_PER_NODE}"
    TASKS_PER_NODE=${TASKS_PER_NODE:-${GPUS_PER_NODE}}
else
    GRES=""
    TASKS_PER_NODE=${TASKS_PER_NODE:-${GPUS}}
fi
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=${@:4}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    ${GRES} \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${TASKS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "${PYTHON:-python}" -u "$(dirname "$0")/train.py" "${CONFIG}" --launcher="slurm" ${PY_ARGS}
