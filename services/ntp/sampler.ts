import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from '../../lib/log.js';
import type { Random } from '../../lib/random.js';
import { LogLimiter } from '../../lib/log.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { decodeNtp, encodeNtp, LeapIndicator, NtpMode, ZERO_TIMESTAMP, type NtpTimestamp } from './wire.js';
import { recordPoll, sampleFromReply, type SourceKind, type SourceState } from './reference.js';
import type { HrWallClock } from './hr-clock.js';

// The SNTP client that samples our upstreams and the other LAN node (same codec as the server). One
// connected ephemeral socket per source; each source gets a quick burst of queries at start (like chrony's iburst) and
// then one query per poll interval; one query in flight per source, matched by address, port and
// the origin timestamp (a random low-order fraction makes it unguessable off-path).
// Shell code: sockets and timers. The sample maths and source selection are in reference.ts.

export interface SamplerTarget {
  kind: SourceKind;
  address: string;
  port: number;
}

export interface SamplerOptions {
  targets: readonly SamplerTarget[];
  pollIntervalMs: number;
  /** Queries at start, 2 s apart, so the first decision comes within seconds. */
  burstCount?: number;
  burstSpacingMs?: number;
  replyTimeoutMs?: number;
  clock: HrWallClock;
  monotonicMs: () => number;
  random: Random;
  log: Logger;
  /** Called after every poll outcome, so the server re-decides what to serve. */
  onChange: () => void;
}

interface InFlight {
  sent: NtpTimestamp;
  t1Ns: bigint;
  timer: NodeJS.Timeout;
}

export class Sampler {
  readonly sources: SourceState[];
  #options: SamplerOptions;
  #sockets = new Map<string, Socket>();
  #pollTimers = new Map<string, NodeJS.Timeout>();
  #inFlight = new Map<string, InFlight>();
  #byName = new Map<string, { state: SourceState; target: SamplerTarget }>();
  #logLimit = new LogLimiter();
  #stopped = false;

  constructor(options: SamplerOptions) {
    this.#options = options;
    this.sources = options.targets.map((t) => ({
      name: `${t.address}:${t.port}`,
      kind: t.kind,
      address: parseIpv4(t.address) ?? 0,
      samples: [],
      reach: 0,
      lastProblem: null,
    }));
    options.targets.forEach((t, i) => this.#byName.set(this.sources[i]!.name, { state: this.sources[i]!, target: t }));
  }

  async start(): Promise<void> {
    for (const source of this.sources) await this.#open(source.name);
    const burst = this.#options.burstCount ?? 4;
    const spacing = this.#options.burstSpacingMs ?? 2000;
    for (const source of this.sources) {
      let sentInBurst = 0;
      const next = (): void => {
        if (this.#stopped) return;
        this.#poll(source.name);
        sentInBurst++;
        this.#schedule(source.name, next, sentInBurst < burst ? spacing : this.#options.pollIntervalMs);
      };
      // The first query waits for start-up to finish: a busy event loop would delay the packet
      // after t1 was taken and skew the first sample.
      this.#schedule(source.name, next, 100);
    }
  }

  /**
   * A connected socket for one source, or the connect's error code. Connected: send() then goes
   * straight to the kernel (no lookup tick between t1 and the packet leaving), and the kernel drops
   * datagrams from anyone but this source. A connect can fail (ENETUNREACH: no route yet to an
   * upstream, an isolated rack): the source then counts as not answering and the next poll tries again.
   */
  async #open(name: string): Promise<string | null> {
    const target = this.#byName.get(name)!.target;
    const socket = createSocket('udp4');
    socket.on('message', (msg) => {
      const t4Ns = this.#options.clock.nowNs(); // first: the receive time of the sample
      this.#onReply(msg, name, t4Ns);
    });
    socket.on('error', (error) => {
      if (this.#logLimit.allow(`socket ${name}`, this.#options.monotonicMs())) {
        this.#options.log.debug({ event: 'ntp.sampler.socket_error', source: name, err: error }, 'sampler socket error');
      }
    });
    // Node hands a failed connect to the callback when there is one (not to 'error').
    const failed = await new Promise<string | null>((resolve) => {
      socket.connect(target.port, target.address, (error?: NodeJS.ErrnoException | null) => resolve(error ? error.code ?? error.message : null));
    });
    if (failed !== null || this.#stopped) {
      try { socket.close(); } catch { /* already closed */ }
      return failed ?? 'stopped';
    }
    this.#sockets.set(name, socket);
    return null;
  }

  #schedule(name: string, run: () => void, waitMs: number): void {
    // A little jitter so two nodes started together do not poll in lockstep.
    const timer = setTimeout(run, waitMs + this.#options.random.int(Math.max(1, Math.floor(waitMs / 16))));
    timer.unref();
    this.#pollTimers.set(name, timer);
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#pollTimers.values()) clearTimeout(t);
    for (const f of this.#inFlight.values()) clearTimeout(f.timer);
    this.#inFlight.clear();
    for (const socket of this.#sockets.values()) { try { socket.close(); } catch { /* never connected */ } }
    this.#sockets.clear();
  }

  #poll(name: string): void {
    const entry = this.#byName.get(name);
    if (!entry) return;
    const socket = this.#sockets.get(name);
    if (!socket) {
      // Never connected (no route at start): try again now. send() on an unconnected socket would
      // take the callback for a port and throw out of this timer, ending the daemon.
      void this.#open(name).then((failed) => {
        if (this.#stopped) return;
        if (failed === null) this.#poll(name);
        else this.#record(entry.state, { problem: `cannot send (${failed})` });
      });
      return;
    }
    const previous = this.#inFlight.get(name);
    if (previous) {
      clearTimeout(previous.timer);
      this.#inFlight.delete(name);
      this.#record(entry.state, { problem: 'no reply' });
    }
    // The transmit timestamp is a random nonce (as chrony sends): the reply must echo it, an
    // off-path forger cannot guess it, and it tells nobody our clock. t1 stays here.
    const sent: NtpTimestamp = { seconds: this.#randomU32(), fraction: this.#randomU32() };
    const query = encodeNtp({
      leap: LeapIndicator.Unsynchronised, version: 4, mode: NtpMode.Client, stratum: 0, poll: 6, precision: -20,
      rootDelay: 0, rootDispersion: 0, referenceId: 0,
      referenceTimestamp: ZERO_TIMESTAMP, originTimestamp: ZERO_TIMESTAMP, receiveTimestamp: ZERO_TIMESTAMP,
      transmitTimestamp: sent, extensions: [], mac: null,
    });
    const timer = setTimeout(() => {
      if (this.#inFlight.get(name)?.timer !== timer) return;
      this.#inFlight.delete(name);
      this.#record(entry.state, { problem: 'no reply' });
    }, this.#options.replyTimeoutMs ?? 2000);
    timer.unref();
    const t1Ns = this.#options.clock.nowNs(); // last thing before the send
    this.#inFlight.set(name, { sent, t1Ns, timer });
    socket.send(query, (error) => {
      if (error && this.#logLimit.allow('send', this.#options.monotonicMs())) {
        this.#options.log.debug({ event: 'ntp.sampler.send_failed', source: name, err: error }, 'query not sent');
      }
    });
  }

  #randomU32(): number {
    const b = this.#options.random.bytes(4);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }

  #onReply(msg: Buffer, from: string, t4Ns: bigint): void {
    // `from` is the source's name: its socket is connected, so only that source reaches it.
    const flight = this.#inFlight.get(from);
    const entry = this.#byName.get(from);
    if (!flight || !entry) return; // not a source we asked, or too late: ignore
    const decodedReply = decodeNtp(msg);
    if (!decodedReply.ok) return;
    const result = sampleFromReply(decodedReply.value, flight.sent, flight.t1Ns, t4Ns, this.#options.monotonicMs());
    if (!result.ok && result.problem === 'bogus-origin') return; // not the answer to our query: keep waiting
    clearTimeout(flight.timer);
    this.#inFlight.delete(from);
    if (result.ok) this.#record(entry.state, { sample: result.sample });
    else this.#record(entry.state, { problem: result.detail });
  }

  #record(state: SourceState, outcome: Parameters<typeof recordPoll>[1]): void {
    const wasProblem = state.lastProblem;
    recordPoll(state, outcome);
    if ('problem' in outcome && wasProblem !== outcome.problem) {
      this.#options.log.info({ event: 'ntp.source.problem', source: state.name, kind: state.kind, problem: outcome.problem }, `NTP source ${state.name}: ${outcome.problem}`);
    } else if ('sample' in outcome && wasProblem !== null) {
      this.#options.log.info({ event: 'ntp.source.ok', source: state.name, kind: state.kind, offsetMs: outcome.sample.offsetS * 1000 }, `NTP source ${state.name} answers`);
    }
    this.#options.onChange();
  }
}
