import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { GUARD_CLOCK_EARLY_MS, GUARD_CLOCK_STEP_MS } from '../../cluster/timers.js';

/** Up to this much before a hold's end the guard may delete the VIP (cluster/timers.ts counts it in the pause figure). */
export { GUARD_CLOCK_EARLY_MS };

// The VIP guard: a small bash process, started with the VIP service, that deletes the VIP when the
// daemon can no longer vouch for it. The daemon writes `hold <seconds>` on every tick while it
// holds the VIP (what is left of its Raft leader lease, less a margin) and `drop` after it let go.
// The guard deletes the address (`ip addr del`) and prints `expired` when
//   - a hold runs out before the next one arrives (the daemon is paused: SIGSTOP, a long GC or a
//     stall), so the VIP never outlives the lease that another member must wait out before it can
//     win an election (HA.md §2.5); or
//   - its stdin closes while armed (the daemon died: kill -9, OOM, a crash), at once.
// The kernel address lifetime (`valid_lft`) stays as the backstop if the guard itself is gone.
// A separate process because a paused or dead daemon cannot act; bash because it is on every
// Debian system, needs a few MB, has fractional `read -t` timeouts and no garbage collector.
// The address and interface are positional arguments, never spliced into the script.

// After it deletes, the guard deletes again 0.05 s and 0.3 s later unless a new hold arrived: an
// `ip addr replace` the daemon started just before it stopped can still land after the first
// delete (the child outlives a paused or killed parent) and would bring the address back.
//
// It also runs the renewals (`renew <lifetime s>`: `ip addr replace`, only while armed) and the
// gratuitous ARPs (`garp`: `arping -U`, in the background, only while armed) for the daemon: a fork
// from this small process costs far less than one from the daemon, whose event loop (and with it
// the lease it must keep renewing) a fork of a large process stalls on a loaded machine. A hold's
// end is kept as an absolute time, so commands arriving between holds never stretch it: monotonic
// time from /proc/uptime (read without a fork, in 10 ms steps, GUARD_CLOCK_STEP_MS; the end is set
// one step early so the coarse reading never makes it late: the VIP goes up to GUARD_CLOCK_EARLY_MS
// before the hold's end, which `lanctl config check`'s pause figure counts). Not EPOCHREALTIME: that is the wall clock, and a step of it
// (`date -s`, NTP stepping a Pi that booted without RTC) would delete the VIP at once (forward) or
// let a hold outlive a paused daemon by the size of the step (back). Nor does a `read -t` timeout
// end a hold by itself: bash times `read -t` on the wall clock too, so a step forward while a line
// is being read times the read out at once (the fault suite's clock_step_leader deleted the VIP
// on every forward step that way); the loop's top checks the monotonic deadline instead. A renewal
// that fails prints `renew_failed`.
//
// The release goes through the guard too (`release`, whether armed or not), answered by `released`
// or `release_failed <ip's stderr>`: the guard disarms, stops the renewal batch (a renewal queued
// there or in its stdin before the release runs first or never) and deletes the address. The guard
// reads its commands in order, so no renewal the daemon issued before it let go can bring the
// address back after the daemon reports that it let go (the degraded hand-back, HA.md 2.5: the
// leader adds the VIP on that report); with the daemon's own `ip addr del` and a `drop` after it, a
// renewal still queued in a lagging guard re-added the VIP for as long as the guard lagged.
//
// The acquiring `ip addr replace` goes through the guard too (`acquire <lifetime s>`, only while
// armed), answered by `acquired` or `acquire_failed <ip's stderr>`: the daemon must know the outcome
// before it binds sockets on the address, and a fork of the daemon cost 40-80 ms of every crash gap
// on a loaded machine (bench:vip's `ip addr` part), a fork of this small bash a few.
//
// Renewals go to one long-lived `ip -force -batch -` (started at the first renewal of a holding)
// rather than a fork and exec of `ip` each: that was 5-10 ms of CPU twice a second on an idle
// leader, the guard's largest cost (bench:idle). ip reports a failed command on its stderr, which
// is the guard's stdout (`Command failed -:N`, read as renew_failed). A renewal written to it runs
// later than the guard's loop, so before every delete (a hold ran out, stdin closed, a signal) and
// on `drop` the batch is killed and reaped first: a netlink request is carried out inside the
// sender's system call, so once ip is gone no queued `replace` can land after the delete (on
// `drop`, after the daemon's own delete, the guard deletes once more for that reason). An
// interface name ip's batch parser could split, or a batch that cannot be written, gets the fork.
//
// The GARPs' arpings run in the background, their PIDs kept (those that ended are reaped at the
// next GARP). Before every delete (a release, a hold run out, stdin closed, a signal) and on `drop`
// they are killed (SIGKILL, by PID) and reaped: an arping forked just before the release, slow to
// start on a loaded machine, could send its gratuitous ARP after the address was gone, and the LAN's
// ARP caches then pointed at a member that no longer held the VIP (after a hand-back or a failover:
// at the old holder while the new one had it).
const SCRIPT = `set -u
trap '' PIPE
armed=0 t=1 again=0 deadline=0 n=0 ipb=0
garps=()
exec 3>&1
now() { local up rest; read -r up rest < /proc/uptime; up=\${up/./}; n=$((10#$up * 10000)); }
ipb_stop() { if [ "$ipb" != 0 ]; then kill -9 "$ipb" 2>/dev/null; wait "$ipb" 2>/dev/null; ipb=0; fi; }
renew() {
  if [[ $2 =~ ^[[:alnum:]_.@-]+$ ]]; then
    if [ "$ipb" = 0 ] || ! kill -0 "$ipb" 2>/dev/null; then ipb=0; coproc IPB { exec ip -force -batch - 2>&3 >/dev/null; }; ipb=$IPB_PID; fi
    printf 'address replace %s dev %s valid_lft %s preferred_lft %s\\n' "$1" "$2" "$3" "$3" >&"\${IPB[1]}" 2>/dev/null && return
    ipb_stop
  fi
  ip addr replace "$1" dev "$2" valid_lft "$3" preferred_lft "$3" 2>/dev/null || echo renew_failed
}
garps_stop() { if [ \${#garps[@]} -gt 0 ]; then kill -9 "\${garps[@]}" 2>/dev/null; wait "\${garps[@]}" 2>/dev/null; garps=(); fi; }
garp() { local p live=(); for p in "\${garps[@]}"; do if kill -0 "$p" 2>/dev/null; then live+=("$p"); else wait "$p" 2>/dev/null; fi; done; garps=("\${live[@]}")
  arping -U -c 1 -I "$2" "\${1%/*}" >/dev/null 2>&1 & garps+=($!); }
del() { ipb_stop; garps_stop; ip addr del "$1" dev "$2" 2>/dev/null; }
gone() { if [ "$armed" = 1 ]; then del "$1" "$2"; armed=0; again=2; t=0.05; echo expired; fi; }
trap 'gone "$1" "$2"; [ "$again" = 0 ] || { sleep 0.05; del "$1" "$2"; sleep 0.25; del "$1" "$2"; }; exit 0' TERM INT HUP
while :; do
  if [ "$armed" = 1 ]; then
    now; left=$((deadline - n))
    if [ "$left" -le 0 ]; then gone "$1" "$2"; continue; fi
    printf -v t '%d.%06d' $((left / 1000000)) $((left % 1000000))
  fi
  if [ "$armed" = 1 ] || [ "$again" != 0 ]; then read -r -t "$t" cmd arg; rc=$?; else read -r cmd arg; rc=$?; fi
  if [ "$rc" = 0 ]; then
    case "$cmd" in
      hold) armed=1; again=0; ms=\${arg/./}; now; deadline=$((n + 10#$ms * 1000 - ${GUARD_CLOCK_STEP_MS * 1000})) ;;
      drop) armed=0; again=0; garps_stop; if [ "$ipb" != 0 ]; then del "$1" "$2"; fi ;;
      renew) if [ "$armed" = 1 ]; then renew "$1" "$2" "$arg"; fi ;;
      garp) if [ "$armed" = 1 ]; then garp "$1" "$2"; fi ;;
      release) armed=0; again=0; ipb_stop; garps_stop
        if err=$(ip addr del "$1" dev "$2" 2>&1); then echo released; else echo "release_failed \${err//$'\\n'/ }"; fi ;;
      acquire) if [ "$armed" != 1 ]; then echo "acquire_failed the VIP guard holds no lease (it ran out)"
        elif err=$(ip addr replace "$1" dev "$2" valid_lft "$arg" preferred_lft "$arg" 2>&1); then echo acquired
        else echo "acquire_failed \${err//$'\\n'/ }"; fi ;;
    esac
  elif [ "$rc" -gt 128 ]; then
    if [ "$armed" = 1 ]; then continue # the loop's top decides, on the monotonic clock
    elif [ "$again" != 0 ]; then del "$1" "$2"; again=$((again - 1)); t=0.25
    fi
  else
    gone "$1" "$2"
    if [ "$again" != 0 ]; then sleep 0.05; del "$1" "$2"; sleep 0.25; del "$1" "$2"; fi
    exit 0
  fi
done
`;

export const BASH = '/bin/bash';
const UPTIME = '/proc/uptime';

/** What the VIP service needs of a guard; tests inject a recorder. */
export interface VipGuard {
  /** The VIP may stay at most `ms` from now unless another hold arrives. */
  hold(ms: number): void;
  /** The daemon released the VIP itself: disarm. */
  drop(): void;
  /** Refresh the address's lifetime (`ip addr replace`), done by the guard while armed; false if it cannot. */
  renew(lifetimeS: number): boolean;
  /** One gratuitous ARP, sent by the guard while armed; false if it cannot. */
  garp(): boolean;
  /**
   * Add the address (`ip addr replace` with this lifetime), run by the guard while armed; resolves
   * with the outcome, or null at once if the guard cannot (not armed, not running): then the caller
   * runs `ip` itself. Optional: a guard without it leaves every acquire to the caller.
   */
  acquire?(lifetimeS: number): Promise<{ code: number; stderr: string }> | null;
  /**
   * Disarm, stop queued renewals and delete the address (`ip addr del`), all in the guard, after
   * every command written before; resolves with ip's outcome, or null at once if the guard cannot
   * (not running) or `{ code: -1 }` if it ended before it answered: then the caller runs `ip` itself.
   */
  release?(): Promise<{ code: number; stderr: string }> | null;
  stop(): Promise<void>;
}

export interface GuardEvents {
  /** The guard deleted the VIP (a hold ran out). */
  expired(): void;
  /** The guard process is gone (it restarts itself after `restartMs`). */
  exited(code: number | null, signal: NodeJS.Signals | null): void;
  /** A renewal the guard ran failed. */
  renewFailed?(): void;
  /** The guard left an acquire or release unanswered for `ms` (an `ip` stuck in the kernel): it is killed and started again. */
  wedged?(command: 'acquire' | 'release', ms: number): void;
}

/**
 * How long the guard may take to answer an acquire or a release (the daemon's own `ip` runs have as
 * long, services/vip/server.ts). A guard that takes longer is wedged: it is killed (SIGKILL by its
 * PID), so the caller gets its fallback at once (an acquire fails, a release is run by the caller)
 * and the guard starts again; a late answer can then not be taken for the next command's.
 */
export const GUARD_ANSWER_MS = 5000;

/** Why no guard can run here, or null. */
export function guardUnavailable(): string | null {
  if (!existsSync(BASH)) return `${BASH} is missing`;
  return existsSync(UPTIME) ? null : `${UPTIME} is missing (the guard's monotonic clock)`;
}

/** Starts the guard process for `cidr` on `ifname`; it is restarted if it dies. */
export function startGuard(cidr: string, ifname: string, events: GuardEvents, restartMs = 1000, answerMs = GUARD_ANSWER_MS): Required<VipGuard> & { readonly pid: number | undefined } {
  let child: ChildProcess | undefined;
  let stopped = false;
  let armed = false;
  /** Acquires written to the guard, answered in order. */
  let acquiring: Array<(r: { code: number; stderr: string }) => void> = [];
  /** Releases written to the guard, answered in order. */
  let releasing: Array<(r: { code: number; stderr: string }) => void> = [];
  const unanswered = (why: string): void => {
    const waiting = acquiring;
    acquiring = [];
    for (const resolve of waiting) resolve({ code: 1, stderr: why });
    const releases = releasing;
    releasing = [];
    for (const resolve of releases) resolve({ code: -1, stderr: why });
  };
  const launch = (): void => {
    // No dotfiles: Node's pipes are socketpairs, and a top-level bash (SHLVL unset, as under
    // systemd) with a socket on stdin takes itself for an rsh session and sources ~/.bashrc (a
    // root's pyenv init held a first VIP 60 s), as it does $BASH_ENV anywhere.
    const env = { ...process.env };
    delete env['BASH_ENV'];
    delete env['ENV'];
    const c = spawn(BASH, ['--norc', '--noprofile', '-c', SCRIPT, 'lanha-vip-guard', cidr, ifname], { stdio: ['pipe', 'pipe', 'ignore'], env });
    child = c;
    armed = false;
    let rest = '';
    c.stdout?.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'expired') { armed = false; events.expired(); }
        else if (line === 'renew_failed' || line.startsWith('Command failed')) events.renewFailed?.(); // the second from the ip batch
        else if (line === 'acquired') acquiring.shift()?.({ code: 0, stderr: '' });
        else if (line.startsWith('acquire_failed')) acquiring.shift()?.({ code: 1, stderr: line.slice('acquire_failed '.length) });
        else if (line === 'released') releasing.shift()?.({ code: 0, stderr: '' });
        else if (line.startsWith('release_failed')) releasing.shift()?.({ code: 1, stderr: line.slice('release_failed '.length) });
      }
    });
    c.stdin?.on('error', () => undefined); // EPIPE if it died; 'exit' says so (no pipes at all: a spawn that failed)
    let gone = false;
    const ended = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (gone) return;
      gone = true;
      if (child === c) child = undefined;
      unanswered(`the VIP guard ended (${signal ?? code}) before it answered`);
      if (stopped) return;
      events.exited(code, signal);
      setTimeout(() => { if (!stopped && child === undefined) launch(); }, restartMs).unref();
    };
    // A spawn that failed (EMFILE/ENFILE for its pipes, EAGAIN) has no pid and no 'exit' to follow:
    // handled as an exit, so the guard is started again (it had stayed gone for good, the VIP unguarded).
    c.on('error', () => { if (c.pid === undefined) ended(null, null); });
    c.on('exit', ended);
  };
  launch();
  const write = (line: string): boolean => {
    if (!child?.stdin?.writable) return false;
    child.stdin.write(line);
    return true;
  };
  /** Waits for the answer to `command`, just written; past `answerMs` the guard is wedged and killed. */
  const answer = (command: 'acquire' | 'release', queue: Array<(r: { code: number; stderr: string }) => void>): Promise<{ code: number; stderr: string }> => {
    const c = child;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (child !== c || c === undefined) return;
        events.wedged?.(command, answerMs);
        c.kill('SIGKILL'); // its 'exit' answers every waiting call (unanswered) and starts it again
      }, answerMs);
      timer.unref();
      queue.push((r) => { clearTimeout(timer); resolve(r); });
    });
  };
  return {
    /** The guard process (tests look at its children). */
    get pid() { return child?.pid; },
    hold(ms) {
      armed = true;
      write(`hold ${(Math.max(1, ms) / 1000).toFixed(3)}\n`);
    },
    drop() {
      if (!armed) return;
      armed = false;
      write('drop\n');
    },
    renew(lifetimeS) {
      return armed && write(`renew ${Math.max(1, Math.round(lifetimeS))}\n`);
    },
    garp() {
      return armed && write('garp\n');
    },
    acquire(lifetimeS) {
      if (!armed || !write(`acquire ${Math.max(1, Math.round(lifetimeS))}\n`)) return null;
      return answer('acquire', acquiring);
    },
    release() {
      if (!write('release\n')) return null;
      armed = false;
      return answer('release', releasing);
    },
    stop() {
      stopped = true;
      const c = child;
      if (c === undefined || c.pid === undefined) { unanswered('the VIP guard was stopped'); return Promise.resolve(); }
      return new Promise((resolve) => {
        c.once('exit', () => resolve());
        // Disarm first: a clean stop releases the VIP itself; EOF then just ends the guard.
        if (armed) c.stdin!.write('drop\n');
        c.stdin!.end();
        setTimeout(() => c.kill('SIGKILL'), 2000).unref();
      });
    },
  };
}
