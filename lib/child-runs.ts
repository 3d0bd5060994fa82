import { execFile, type ChildProcess } from 'node:child_process';

// Short commands a service runs for the kernel (`ip addr`, `arping`), tracked by PID so that a stop
// waits for them and ends those that overrun, instead of exiting with a child still running (a
// stopped or hung `ip addr del` left the VIP on the link and the child behind). Each runner keeps
// its own children; every runner's children are also listed process-wide (runningChildren), so the
// daemon's last resort at its stop limit can kill them by PID and name them (bin/daemon.ts).

export interface CommandResult {
  code: number;
  stderr: string;
}

/** A child still running: what it runs, its PID and how long it has run. */
export interface RunningChild {
  pid: number | undefined;
  command: string;
  ms: number;
}

/** A child a stop had to end: SIGKILL sent ('killed'), and whether it was seen to end after it. */
export interface EndedChild {
  pid: number | undefined;
  command: string;
  ms: number;
  outcome: 'killed' | 'left';
}

/** After SIGKILL, how long a child's exit is waited for before the caller goes on without it. */
export const KILL_WAIT_MS = 200;

interface Tracked {
  child: ChildProcess;
  command: string;
  startedMs: number;
  exited: Promise<void>;
}

const everyRunner = new Set<ChildRuns>();

export class ChildRuns {
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #running = new Set<Tracked>();
  #closed = false;

  /** `timeoutMs`: any one command is killed (SIGKILL) after this long, stop or not. */
  constructor(timeoutMs: number, now: () => number = () => performance.now()) {
    this.#timeoutMs = timeoutMs;
    this.#now = now;
    everyRunner.add(this);
  }

  /** Runs a program with arguments (execFile: no shell). After close() it is not started: code 127. */
  run = (program: string, args: readonly string[]): Promise<CommandResult> => {
    const command = [program, ...args].join(' ');
    if (this.#closed) return Promise.resolve({ code: 127, stderr: `not run, stopping: ${command}` });
    return new Promise((resolve) => {
      let exit!: () => void;
      const exited = new Promise<void>((r) => { exit = r; });
      const child = execFile(program, [...args], { timeout: this.#timeoutMs, killSignal: 'SIGKILL' }, (error, _stdout, stderr) => {
        if (error === null) { resolve({ code: 0, stderr }); return; }
        const code = typeof error.code === 'number' ? error.code : 127;
        resolve({ code, stderr: stderr !== '' ? stderr : error.message });
      });
      const tracked: Tracked = { child, command, startedMs: this.#now(), exited };
      this.#running.add(tracked);
      const done = (): void => {
        this.#running.delete(tracked);
        if (this.#closed && this.#running.size === 0) everyRunner.delete(this);
        exit();
      };
      child.once('exit', done);
      child.once('error', done); // not started (ENOENT, EAGAIN): execFile's callback says why
    });
  };

  running(): RunningChild[] {
    const now = this.#now();
    return [...this.#running].map((t) => ({ pid: t.child.pid, command: t.command, ms: Math.round(now - t.startedMs) }));
  }

  /**
   * Waits at most `limitMs` for `work` (which waits for this runner's commands); then SIGKILLs by PID
   * every command of this runner still running (their results say so: `work` goes on) and waits
   * for `work` at most KILL_WAIT_MS more. Returns the commands it killed.
   */
  async within(limitMs: number, work: Promise<unknown> | unknown): Promise<EndedChild[]> {
    let timer: NodeJS.Timeout | undefined;
    const settled = Promise.resolve(work).then(() => 'done' as const, () => 'done' as const);
    const outcome = await Promise.race([settled, new Promise<'late'>((r) => { timer = setTimeout(() => r('late'), limitMs); })]);
    clearTimeout(timer);
    if (outcome === 'done') return [];
    const ended = await this.#kill('SIGKILL');
    await Promise.race([settled, new Promise<void>((r) => { timer = setTimeout(r, KILL_WAIT_MS); })]);
    clearTimeout(timer);
    return ended;
  }

  /**
   * Starts no more commands; sends those still running `signal` at once (SIGTERM: an `arping` that
   * waits for replies nobody needs any more), SIGKILL to those still there `graceMs` later, and
   * resolves once all have ended or KILL_WAIT_MS after that. Returns those that needed SIGKILL.
   */
  async close(graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<EndedChild[]> {
    this.#closed = true;
    if (this.#running.size === 0) { everyRunner.delete(this); return []; }
    for (const t of this.#running) signalChild(t.child, signal);
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all([...this.#running].map((t) => t.exited));
    if (await Promise.race([all.then(() => true), new Promise<false>((r) => { timer = setTimeout(() => r(false), graceMs); })])) { clearTimeout(timer); return []; }
    return this.#kill('SIGKILL');
  }

  /** SIGKILLs (by PID) every command still running and waits up to KILL_WAIT_MS for their exits; more can be run after. Returns them. */
  killRunning(): Promise<EndedChild[]> {
    return this.#running.size === 0 ? Promise.resolve([]) : this.#kill('SIGKILL');
  }

  /** SIGKILLs every command still running, waits up to KILL_WAIT_MS for their exits. */
  async #kill(signal: NodeJS.Signals): Promise<EndedChild[]> {
    const now = this.#now();
    const victims = [...this.#running];
    for (const t of victims) {
      signalChild(t.child, signal);
      // A grandchild holding the pipes would keep execFile's callback (and the caller) waiting.
      t.child.stdout?.destroy();
      t.child.stderr?.destroy();
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(victims.map((t) => t.exited)), new Promise<void>((r) => { timer = setTimeout(r, KILL_WAIT_MS); })]);
    clearTimeout(timer);
    return victims.map((t) => ({ pid: t.child.pid, command: t.command, ms: Math.round(now - t.startedMs), outcome: this.#running.has(t) ? 'left' : 'killed' }));
  }

  /** SIGKILLs at once (no wait) every command still running: the process is about to exit. */
  killNow(): RunningChild[] {
    const running = this.running();
    for (const t of this.#running) signalChild(t.child, 'SIGKILL');
    return running;
  }
}

function signalChild(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(child.pid, signal); } catch { /* gone meanwhile */ }
}

/** Every tracked command still running in this process, of every runner. */
export function runningChildren(): RunningChild[] {
  return [...everyRunner].flatMap((r) => r.running());
}

/** The daemon gives up on its stop and exits: SIGKILLs every tracked command by PID; returns them. */
export function killRunningChildren(): RunningChild[] {
  return [...everyRunner].flatMap((r) => r.killNow());
}
