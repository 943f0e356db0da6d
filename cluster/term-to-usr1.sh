#!/bin/sh
# Runs a command (typically `mpirun ... tokdrop train ...`) and turns a
# SIGTERM sent to this script into SIGUSR1 for the command, then exits with
# the command's status.
#   cluster/term-to-usr1.sh mpirun -n 64 build/tokdrop train CONFIG.yaml
#
# Why: Open MPI's mpirun (4.1) cannot forward SIGTERM; on SIGTERM it ends
# the job itself and exits 1, checkpoint or not, while it forwards SIGUSR1
# to every rank, which then stop at a checkpoint and exit 75 (README, "Stop
# signals"). This helps where SIGTERM goes to the launched process alone
# (kill PID, systemd's KillMode=mixed); a SIGTERM to the whole process
# group or job still reaches mpirun directly, and then nothing helps: send
# SIGUSR1 there instead (Slurm: --signal=USR1@120).
"$@" &
pid=$!
trap 'kill -USR1 $pid 2>/dev/null' TERM
# wait returns early (status > 128) when the trap runs; wait again until
# the command itself has ended (a zombie still answers kill -0)
while :; do
    wait $pid
    rc=$?
    kill -0 $pid 2>/dev/null || break
done
exit $rc
