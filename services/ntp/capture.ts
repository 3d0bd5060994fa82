import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PcapReader, type CapturedDatagram } from './pcap.js';

// The kernel receive stamps of NTP requests, without a native addon: a packet-capture child
// (tcpdump) writes each request's first bytes with the stamp the kernel put on it in its receive
// path, before any process woke; pcap.ts reads them and kernel-stamps.ts pairs them with the
// requests the handler reads. The child is optional and bounded: it is started only when asked,
// restarted with a growing backoff when it dies or writes what is not pcap, stopped while requests
// come faster than the capture is worth (the loop is awake then and the estimate is good), and
// killed with the service. Nothing it does or fails to do reaches a reply except through a stamp.

export type CaptureState = 'starting' | 'running' | 'bypassed' | 'restarting' | 'unavailable' | 'stopped';

export interface CaptureOptions {
  /** The UDP port the requests come to. */
  port: number;
  /** A request received on `port`. */
  onRequest: (request: CapturedDatagram) => void;
  /** A reply this host sent from `port`. */
  onReply: (reply: CapturedDatagram) => void;
  /** Whether an address is one this server answers from (a reply from it is ours). */
  isOwnAddress: (address: string) => boolean;
  /** Every change of state, with why (the shell logs it). */
  onState: (state: CaptureState, detail: string) => void;
  /** The capture program (tests point it elsewhere); tcpdump from PATH by default. */
  command?: string;
  /** Tests and benches: another interface than every one (`any`). */
  interfaceName?: string;
}

/** The first restart waits this long; each failure doubles it, up to the maximum. */
const RESTART_FIRST_MS = 1_000;
const RESTART_MAX_MS = 300_000;
/** A child that ran this long before it died starts the backoff afresh. */
const HEALTHY_RUN_MS = 60_000;
/** A child that has not exited this long after SIGTERM at the stop gets SIGKILL. */
export const CHILD_STOP_MS = 500;
/** The kernel's capture buffer for the child (KiB): a few hundred requests; more is dropped there. */
const CAPTURE_BUFFER_KIB = 256;
/**
 * util-linux's setpriv (Essential in Debian) runs the child with a parent-death signal: a daemon
 * killed with SIGKILL takes its capture with it, where a tcpdump that saw no more packets would
 * otherwise sleep on for good. Where it is missing the child runs bare.
 */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;
/** setpriv's exit code when the program it was to run cannot be executed (not found). */
const EXEC_FAILED = 127;

export class KernelCapture {
  private child: ChildProcess | null = null;
  private reader = new PcapReader();
  private stateNow: CaptureState = 'stopped';
  private problemNow: string | null = null;
  private restartMs = RESTART_FIRST_MS;
  private restartTimer: NodeJS.Timeout | null = null;
  private startedAtMs = 0;
  private wanted = false;
  private bypassed = false;
  /** Records read that were NTP requests, records skipped, children started. */
  captured = 0;
  skipped = 0;
  starts = 0;

  constructor(private readonly options: CaptureOptions) {}

  get state(): CaptureState { return this.stateNow; }
  /** The child's process id while one runs. */
  get pid(): number | null { return this.child?.pid ?? null; }
  get problem(): string | null { return this.problemNow; }
  /** True while stamps may come: the handler asks the table only then. */
  get active(): boolean { return this.stateNow === 'running'; }

  /** The capture program and its arguments (for the log and for tests). */
  commandLine(): string[] {
    return [
      this.options.command ?? 'tcpdump',
      '-i', this.options.interfaceName ?? 'any',
      // Each packet written at once (-U, --immediate-mode), only its first 128 bytes, nanosecond stamps.
      '-U', '--immediate-mode', '-w', '-', '-s', '128', '--time-stamp-precision=nano',
      '-B', String(CAPTURE_BUFFER_KIB), '-n',
      // Requests in and replies out (onBytes tells them apart).
      `udp and (dst port ${this.options.port} or src port ${this.options.port})`,
    ];
  }

  /** What is spawned: the capture, under setpriv's parent-death signal where there is one. */
  private spawnLine(): string[] {
    const line = this.commandLine();
    return SETPRIV === null ? line : [SETPRIV, '--pdeathsig', 'TERM', '--', ...line];
  }

  start(): void {
    this.wanted = true;
    if (!this.bypassed) this.spawnChild();
  }

  /** Stops the child while the request rate makes it pointless; `resume` starts it again. */
  bypass(reason: string): void {
    if (this.bypassed || !this.wanted) return;
    this.bypassed = true;
    this.killChild();
    this.setState('bypassed', reason);
  }

  resume(reason: string): void {
    if (!this.bypassed) return;
    this.bypassed = false;
    if (this.wanted && this.stateNow !== 'unavailable') { this.setState('starting', reason); this.spawnChild(); }
  }

  /**
   * Stops the capture for good. Resolves once the child has exited: 'exited' on SIGTERM, 'killed'
   * when it was still there CHILD_STOP_MS later and got SIGKILL, 'left' when even that was not seen
   * to end it in CHILD_STOP_MS more (the stop goes on; the caller says so).
   */
  stop(): Promise<'none' | 'exited' | 'killed' | 'left'> {
    this.wanted = false;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const child = this.child;
    this.killChild();
    this.stateNow = 'stopped';
    if (child === null || child.exitCode !== null || child.signalCode !== null) return Promise.resolve('none');
    return new Promise((resolve) => {
      let outcome: 'exited' | 'killed' = 'exited';
      let timer = setTimeout(() => {
        outcome = 'killed';
        child.kill('SIGKILL');
        timer = setTimeout(() => resolve('left'), CHILD_STOP_MS);
      }, CHILD_STOP_MS);
      child.once('exit', () => { clearTimeout(timer); resolve(outcome); });
    });
  }

  private spawnChild(): void {
    if (this.child !== null || !this.wanted) return;
    const [command, ...args] = this.spawnLine();
    const program = this.commandLine()[0]!;
    this.reader = new PcapReader();
    this.starts++;
    this.startedAtMs = Date.now();
    this.stateNow = 'starting';
    let child: ChildProcess;
    try {
      child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      this.failed(`could not start ${command}: ${(error as Error).message}`);
      return;
    }
    this.child = child;
    let lastError = '';
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (this.child !== child) return;
      this.child = null;
      if (error.code === 'ENOENT') { this.setState('unavailable', `${program} not found`); return; }
      this.failed(`${program}: ${error.message}`);
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      for (const line of text.split('\n')) {
        const trimmed = line.trim();
        if (trimmed === '') continue;
        // tcpdump says "listening on any, link-type ..." once the capture is open.
        if (this.child === child && this.stateNow === 'starting' && trimmed.includes('listening on')) {
          this.setState('running', trimmed);
        } else if (trimmed.length < 300) lastError = trimmed;
      }
    });
    child.stdout!.on('data', (chunk: Buffer) => { if (this.child === child) this.onBytes(chunk); });
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = null;
      if (code === EXEC_FAILED && command !== program) { this.setState('unavailable', `${program} not found (${lastError})`); return; }
      const why = `${program} exited (${signal ?? `code ${code}`})${lastError === '' ? '' : `: ${lastError}`}`;
      this.failed(why);
    });
  }

  private onBytes(chunk: Buffer): void {
    for (const event of this.reader.push(chunk)) {
      if (event.kind === 'datagram') {
        const d = event.datagram;
        this.captured++;
        // On `any`, libpcap keeps only the received copy of a loopback datagram: a reply of ours on
        // loopback shows as received, stamped where the client's socket gets it. An upstream's reply
        // to our sampler also comes from `port`, from an address not ours.
        if (d.destinationPort === this.options.port && d.outgoing !== true) this.options.onRequest(d);
        else if (d.port === this.options.port && (d.outgoing === true || this.options.isOwnAddress(d.address))) this.options.onReply(d);
      } else if (event.kind === 'skipped') this.skipped++;
      else { this.killChild(); this.failed(`capture output unreadable: ${event.reason}`); return; }
    }
  }

  private failed(why: string): void {
    if (!this.wanted || this.bypassed) return;
    if (Date.now() - this.startedAtMs >= HEALTHY_RUN_MS) this.restartMs = RESTART_FIRST_MS;
    const delayMs = this.restartMs;
    this.restartMs = Math.min(RESTART_MAX_MS, this.restartMs * 2);
    this.setState('restarting', `${why}; again in ${delayMs / 1000} s`);
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => { this.restartTimer = null; if (!this.bypassed) this.spawnChild(); }, delayMs);
    this.restartTimer.unref();
  }

  private killChild(): void {
    const child = this.child;
    this.child = null;
    if (child === null) return;
    child.stdout?.removeAllListeners('data');
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }

  private setState(state: CaptureState, detail: string): void {
    this.stateNow = state;
    this.problemNow = state === 'running' ? null : detail;
    this.options.onState(state, detail);
  }
}
