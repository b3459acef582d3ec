#!/usr/bin/env bash
# Issue 10 tmux check: a real `chute DATA` at 80x24. `/` plus a fast-typed `state:quarantined`
# (tmux send-keys -l: every key at once) must leave the console running and filtered; purging the
# old version of a changed file by `--id` (through the console's command channel) must leave the
# newer held file on disk and held; `q` prints the one-line summary. Prints what it saw.
set -u
W=$(mktemp -d /tmp/chute-tmux.XXXX)
BIN=${CHUTE_BIN:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/chute}
mkdir -p $W/data
printf 'id,v\n' > $W/data/sales.csv.part; for i in $(seq 1 200); do echo "$i,$i"; done >> $W/data/sales.csv.part; mv $W/data/sales.csv.part $W/data/sales.csv
printf 'not gzip\n' > $W/data/bad-0001.csv.gz
S=chute-check-$$
tmux new-session -d -s $S -x 80 -y 24 "cd $W && TERM=xterm-256color $BIN $W/data --state-dir $W/state --clickhouse chdb://$W/ch --settle-seconds 0.2; echo EXITED rc=\$?; sleep 30"
tmux set-option -t $S remain-on-exit on >/dev/null
for i in $(seq 1 120); do $BIN files --state-dir $W/state 2>/dev/null | grep -q "sales.csv.*loaded" && break; sleep 0.5; done
printf 'id,v\n' > $W/data/sales.csv.part; for i in $(seq 5 224); do echo "$i,$i"; done >> $W/data/sales.csv.part; mv $W/data/sales.csv.part $W/data/sales.csv
for i in $(seq 1 120); do $BIN files --state-dir $W/state 2>/dev/null | grep -q "sales.csv.*held" && break; sleep 0.5; done
echo "== chute files (console running)"; $BIN files --state-dir $W/state
tmux send-keys -t $S -l '/state:quarantined'
sleep 3
echo "== screen after '/' + fast-typed state:quarantined"; tmux capture-pane -p -t $S
pgrep -f "chute $W/data" >/dev/null && echo "console still running: yes" || echo "console still running: NO"
OLD=$($BIN files --state-dir $W/state | awk -F'\t' '$2=="sales.csv" && $4=="loaded"{print $1}')
echo "== chute purge --id $OLD"; $BIN purge --id $OLD --state-dir $W/state; echo "rc=$?"
echo "== after"; $BIN files --state-dir $W/state; ls -l $W/data/sales.csv && wc -l < $W/data/sales.csv
tmux send-keys -t $S Escape; sleep 0.5; tmux send-keys -t $S q; 
for i in $(seq 1 60); do tmux capture-pane -p -t $S | grep -q EXITED && break; sleep 0.5; done
echo "== terminal after q"; tmux capture-pane -p -t $S | grep -v '^$' | tail -4
tmux kill-session -t $S
rm -rf $W
