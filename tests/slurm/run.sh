#!/usr/bin/env bash
# `make test-slurm`: the Slurm path run for real, out of CI. Installs
# Debian's slurm-wlm and munge if missing (root), starts a one-node cluster on
# this machine (state in a temporary folder), runs tools/slurm_train.sh for a
# two-task gloo training with evaluation, then --resume to a longer schedule
# and tools/slurm_test.sh on the result, checks what the runs recorded, and
# tears the cluster down whatever happened.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}

if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge
fi

TMP=$(mktemp -d /tmp/qkv-slurm.XXXXXX)
HOST=$(hostname -s)
CPUS=$(nproc)
PIDS=()
teardown() {
    scancel --user="$(id -un)" > /dev/null 2>&1 || true
    for pid in "${PIDS[@]}"; do kill "$pid" > /dev/null 2>&1 || true; done
    sleep 1
    for pid in "${PIDS[@]}"; do kill -9 "$pid" > /dev/null 2>&1 || true; done
    rm -rf "$TMP"
}
trap teardown EXIT

mkdir -p "$TMP"/{state,spool,munge,log}
# munge: a key of its own, a socket in the temporary folder
dd if=/dev/urandom bs=1 count=1024 of="$TMP/munge/munge.key" 2> /dev/null
chmod 0400 "$TMP/munge/munge.key"
munged --key-file="$TMP/munge/munge.key" --socket="$TMP/munge/munge.socket" \
    --pid-file="$TMP/munge/munged.pid" --log-file="$TMP/log/munged.log" \
    --seed-file="$TMP/munge/munge.seed" --force
PIDS+=("$(cat "$TMP/munge/munged.pid")")

cat > "$TMP/slurm.conf" << EOF
ClusterName=qkvtest
SlurmctldHost=$HOST
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
AuthInfo=socket=$TMP/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/slurmctld.pid
SlurmdPidFile=$TMP/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
SlurmctldPort=${SLURMCTLD_PORT:-26817}
SlurmdPort=${SLURMD_PORT:-26818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=$HOST CPUs=$CPUS State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF=$TMP/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
sleep 2
PIDS+=("$(cat "$TMP/slurmctld.pid")" "$(cat "$TMP/slurmd.pid")")
for _ in $(seq 60); do
    if sinfo -h -o '%T' | grep -qE '^(idle|mixed)'; then break; fi
    sleep 1
done
sinfo
echo "[test-slurm] cluster up: one node ($HOST, $CPUS CPUs), partition cpu"

DATA=$TMP/data
"$PY" tools/make_dataset.py --out "$DATA" --tracks cyclic --num-train 16 \
    --num-val 8 --num-test 8 > "$TMP/log/data.log"
CONFIG=configs/qkv_study/nonlocal-separate_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128.py
options() {  # $1: iterations
    echo "train_dataloader.dataset.data_root=$DATA" \
        "val_dataloader.dataset.data_root=$DATA" \
        "test_dataloader.dataset.data_root=$DATA" \
        "train_cfg.max_iters=$1" "train_cfg.val_interval=2" \
        "param_scheduler.0.end=$1" "default_hooks.checkpoint.interval=2" \
        "default_hooks.logger.interval=1" "train_dataloader.batch_size=2"
}
WORK=$TMP/work
export GPUS=2 GPUS_PER_NODE=0 CPUS_PER_TASK=1 PYTHON=$PY
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MASTER_PORT=${MASTER_PORT:-29511}

echo "[test-slurm] two tasks, 4 iterations, evaluation at 2 and 4"
tools/slurm_train.sh cpu qkv-train "$CONFIG" --work-dir "$WORK" \
    --cfg-options $(options 4)
"$PY" - "$WORK" 4 << 'EOF'
import json, sys
stats = json.load(open(f'{sys.argv[1]}/run_stats.json'))
assert stats['complete'] and stats['iter'] == int(sys.argv[2]), stats
assert stats['world_size'] == 2 and len(stats['steps_per_rank']) == 2, stats
assert [h['iter'] for h in stats['val_history']][-1] == int(sys.argv[2])
print(f"[test-slurm] OK: world size {stats['world_size']}, iter "
      f"{stats['iter']}, val mIoU {stats['metrics']['mIoU']}")
EOF

echo "[test-slurm] --resume to 6 iterations"
tools/slurm_train.sh cpu qkv-resume "$CONFIG" --work-dir "$WORK" --resume \
    --cfg-options $(options 6) | tee "$TMP/log/resume.log"
grep -q 'resumed' "$WORK"/*/*.log || grep -qi 'resum' "$TMP/log/resume.log"
"$PY" - "$WORK" 6 << 'EOF'
import json, sys
stats = json.load(open(f'{sys.argv[1]}/run_stats.json'))
assert stats['complete'] and stats['iter'] == int(sys.argv[2]), stats
assert stats['world_size'] == 2, stats
print(f"[test-slurm] OK: resumed to iter {stats['iter']}")
EOF

echo "[test-slurm] tools/slurm_test.sh on the final checkpoint"
tools/slurm_test.sh cpu qkv-test "$CONFIG" "$WORK/iter_6.pth" \
    --work-dir "$TMP/test" --cfg-options $(options 6) | tee "$TMP/log/test.log"
grep -q 'mIoU' "$TMP/log/test.log"
echo "[test-slurm] PASS: slurm_train.sh (2 tasks, gloo) with evaluation, --resume, slurm_test.sh"
