import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { parseConfig } from '../config/index.js';
import { createLogger } from '../lib/log.js';
import { errorMessage } from '../lib/errors.js';
import { parseIpv4, reverseName } from '../lib/ipv4.js';
import { dhcpProbe } from '../services/dhcp/probe.js';
import { startDaemon, type Daemon } from './daemon.js';
import { which } from '../lib/netns.js';
import { dnsQuery, ntpQuery, tftpGet } from './demo-probes.js';
import { describeAckAudit, type AckAuditSummary } from '../cluster/ack-audit.js';
import type { CliIo } from './cli.js';

// `lanctl demo` without root: one lanha node on loopback and high ports, exercised by built-in
// clients (a relay-style DHCP probe, DNS, TFTP, NTP; `dig` when installed), then a restart that
// must lose no ACKed lease, explain and doctor. Every step is printed as it runs. Everything it
// makes lives in one temporary directory, removed on exit, on error and on Ctrl-C.

export interface DemoOptions {
  once: boolean;
  json: boolean;
  httpPort: number;
  basePort: number;
}

export interface DemoStep { step: string; ok: boolean; ms: number; detail: string }

export const DEMO_EXIT = { ok: 0, checkFailed: 1, prerequisites: 2, interrupted: 130 } as const;

class CheckFailed extends Error {}

/** Prints "[n] what ... ok detail (ms)" as each step runs; keeps the list for --json. */
export class StepPrinter {
  readonly steps: DemoStep[] = [];
  #io: CliIo;
  #quiet: boolean;
  constructor(io: CliIo, quiet: boolean) { this.#io = io; this.#quiet = quiet; }

  note(text: string): void { if (!this.#quiet) this.#io.out(`${text}\n`); }

  async run<T>(step: string, body: () => Promise<{ value: T; detail: string }>): Promise<T> {
    const n = this.steps.length + 1;
    if (!this.#quiet) this.#io.out(`[${n}] ${step} ... `);
    const started = performance.now();
    try {
      const { value, detail } = await body();
      const ms = Math.round(performance.now() - started);
      this.steps.push({ step, ok: true, ms, detail });
      if (!this.#quiet) this.#io.out(`ok  ${detail} (${ms} ms)\n`);
      return value;
    } catch (error) {
      const ms = Math.round(performance.now() - started);
      this.steps.push({ step, ok: false, ms, detail: errorMessage(error) });
      if (!this.#quiet) this.#io.out(`FAILED  ${errorMessage(error)}\n`);
      throw new CheckFailed(`${step}: ${errorMessage(error)}`);
    }
  }
}

async function tcpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function udpFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => { s.close(); resolve(false); });
    s.bind(port, host, () => s.close(() => resolve(true)));
  });
}

function dig(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+short', '+time=2', '+tries=1', ...args], { timeout: 5000 }, (error, stdout) => (error ? reject(error) : resolve(stdout.trim())));
  });
}

function demoConfig(dir: string, o: DemoOptions): string {
  const p = o.basePort;
  return `node: { name: demo, address: 127.0.0.1, stateDir: "${dir}/state", controlSocket: "${dir}/lanha.sock", logLevel: info }
http: { listen: "127.0.0.1:${o.httpPort}" }
dhcp:
  port: ${p + 67}
  listen: 127.0.0.1
  serverId: 127.0.0.1
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.10.10-127.0.10.250]
      dns: [127.0.0.1]
      ntp: [127.0.0.1]
      domain: demo.lan
      leaseTime: 1h
      reservations: [{ mac: "52:54:00:00:00:01", ip: 127.0.10.5, hostname: node01 }]
  boot:
    - { name: uefi-x86_64, match: { arch: [7, 9] }, bootfile: ipxe.efi }
dns:
  port: ${p + 53}
  workers: 0
  zones:
    - name: demo.lan
      leases: true
      records: ["@ NS ns1", "ns1 A 127.0.0.1", "www A 127.0.0.80"]
tftp: { port: ${p + 69}, root: "${dir}/tftp" }
ntp: { port: ${p + 123}, localStratum: 10, samplePeer: false }
`;
}

export async function runLoopbackDemo(o: DemoOptions, io: CliIo, signal: AbortSignal): Promise<number> {
  const say = new StepPrinter(io, o.json);
  const p = o.basePort;
  const busy: string[] = [];
  if (!(await tcpFree(o.httpPort))) busy.push(`tcp 127.0.0.1:${o.httpPort} (HTTP; choose another with --http-port N)`);
  for (const [name, port] of [['DHCP', p + 67], ['DNS', p + 53], ['TFTP', p + 69], ['NTP', p + 123]] as const) {
    if (!(await udpFree(port))) busy.push(`udp 127.0.0.1:${port} (${name}; choose other ports with --base-port N)`);
  }
  if (!(await udpFree(p + 67, '127.0.0.2'))) busy.push(`udp 127.0.0.2:${p + 67} (the DHCP probe)`);
  if (busy.length > 0) {
    const text = `lanctl demo: ports in use, nothing was started: ${busy.join('; ')}. Is another lanha (npm start) running?`;
    if (o.json) io.out(JSON.stringify({ ok: false, exitCode: DEMO_EXIT.prerequisites, error: text, steps: [] }, null, 2) + '\n');
    else io.err(text + '\n');
    return DEMO_EXIT.prerequisites;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-demo-'));
  mkdirSync(join(dir, 'tftp'));
  writeFileSync(join(dir, 'tftp', 'hello.txt'), 'hello from lanha tftp\n');
  const config = parseConfig(demoConfig(dir, o), 'demo.yaml');
  writeFileSync(join(dir, 'lanha.yaml'), demoConfig(dir, o));
  let daemon: Daemon | null = null;
  const logLines: string[] = [];
  const log = createLogger({ level: 'info', node: 'demo', destination: { write: (s: string) => { logLines.push(s); if (logLines.length > 5000) logLines.shift(); } } });
  const start = async (): Promise<Daemon> => startDaemon(config, { log });
  const url = `http://127.0.0.1:${o.httpPort}/`;
  let code: number = DEMO_EXIT.ok;
  try {
    say.note(`lanha demo: one node on loopback, high ports (not root: the namespace lab with two nodes, a witness, a VIP and failover needs root).`);
    daemon = await say.run('start lanha: DHCP, DNS, TFTP, NTP, status pages', async () => {
      const d = await start();
      return { value: d, detail: `${d.services.map((s) => s.name).join(', ')}; pages at ${url}` };
    });
    const reserved = await say.run('DHCP lease for node01 (reserved), built-in probe', async () => {
      const r = await dhcpProbe({ server: '127.0.0.1', port: p + 67, mac: '52:54:00:00:00:01', hostname: 'node01' });
      if (r.acked !== '127.0.10.5') throw new Error(`got ${r.acked}, reserved is 127.0.10.5`);
      return { value: r, detail: `${r.acked}, ACK ${r.requestToAckMs} ms after REQUEST (commit included)` };
    });
    const laptop = await say.run('DHCP lease for laptop (pool)', async () => {
      const r = await dhcpProbe({ server: '127.0.0.1', port: p + 67, mac: '52:54:00:00:00:42', hostname: 'laptop' });
      return { value: r, detail: `${r.acked}, ACK ${r.requestToAckMs} ms after REQUEST` };
    });
    const useDig = which('dig');
    await say.run(`DNS: laptop.demo.lan resolves (${useDig ? 'dig' : 'built-in query'})`, async () => {
      // The zones are rebuilt a moment after the lease commits: ask again for up to 5 s.
      let answer = '';
      for (const deadline = performance.now() + 5000; answer !== laptop.acked && performance.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
        answer = useDig ? await dig(p + 53, ['laptop.demo.lan', 'A']) : (await dnsQuery('127.0.0.1', p + 53, 'laptop.demo.lan', 1)).answers.join(' ').replace('A ', '');
      }
      if (answer !== laptop.acked) throw new Error(`answer "${answer}", lease is ${laptop.acked}`);
      return { value: null, detail: `A ${answer}` };
    });
    await say.run('DNS: the PTR of its address', async () => {
      const name = reverseName(parseIpv4(laptop.acked)!);
      const answer = useDig ? await dig(p + 53, [name, 'PTR']) : (await dnsQuery('127.0.0.1', p + 53, name, 12)).answers.join(' ').replace('PTR ', '');
      if (!answer.startsWith('laptop.demo.lan')) throw new Error(`answer "${answer}"`);
      return { value: null, detail: `${name} PTR ${answer}` };
    });
    await say.run('TFTP: read hello.txt', async () => {
      const data = await tftpGet('127.0.0.1', p + 69, 'hello.txt');
      return { value: null, detail: `${data.length} bytes: "${data.toString('utf8').trim()}"` };
    });
    await say.run('NTP: ask for the time', async () => {
      const r = await ntpQuery('127.0.0.1', p + 123);
      if (r.leap === 3) throw new Error('the server says it is unsynchronised (leap 3)');
      return { value: null, detail: `stratum ${r.stratum}, offset ${r.offsetMs} ms` };
    });
    await say.run('explain laptop: why it got its address', async () => {
      const r = await daemon!.control.read('/v1/explain', new URLSearchParams({ q: 'laptop.demo.lan' }));
      const body = r.body as { dhcp?: { lease?: { ip: string; index: number | null } | null; subnet: { id: string } } };
      if (r.status !== 200 || body.dhcp?.lease?.ip !== laptop.acked) throw new Error(`explain answered ${r.status}`);
      return { value: null, detail: `subnet ${body.dhcp.subnet.id}, committed at log index ${body.dhcp.lease.index}` };
    });
    await say.run('restart the daemon: ACKed leases survive', async () => {
      await daemon!.stop();
      daemon = await start();
      const kept = [reserved.acked, laptop.acked].filter((ip) => daemon!.state.fsm.lease(parseIpv4(ip)!)?.state === 'bound');
      const lost = 2 - kept.length;
      if (lost !== 0) throw new Error(`ACKed leases lost: ${lost}`);
      // The daemon's own check: its journal of the ACKs it sent, against the log after the restart.
      let audit: AckAuditSummary | undefined;
      for (const deadline = performance.now() + 10_000; audit?.lastAudit == null && performance.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
        audit = ((await daemon!.control.read('/v1/status')).body as { ackAudit?: AckAuditSummary }).ackAudit;
      }
      if (audit?.lastAudit == null) throw new Error('the daemon did not audit its ACKs after the restart');
      if (audit.lostTotal !== 0) throw new Error(describeAckAudit(audit));
      return { value: null, detail: `ACKed leases lost: 0; the daemon's audit: ${audit.lastAudit.checked} ACKs checked against the log after the restart, ${audit.lostTotal} lost` };
    });
    await say.run('doctor', async () => {
      const r = await daemon!.control.read('/v1/doctor');
      const findings = (r.body as { findings: Array<{ id: string; severity: string }> }).findings;
      const errors = findings.filter((f) => f.severity === 'error');
      if (errors.length > 0) throw new Error(`error findings: ${errors.map((f) => f.id).join(', ')}`);
      return { value: null, detail: findings.length === 0 ? 'no findings' : `${findings.length} non-error findings: ${findings.map((f) => f.id).join(', ')}` };
    });
  } catch (error) {
    if (!(error instanceof CheckFailed)) {
      say.steps.push({ step: 'demo', ok: false, ms: 0, detail: errorMessage(error) });
      if (!o.json) io.err(`lanctl demo: ${errorMessage(error)}\n`);
    }
    code = DEMO_EXIT.checkFailed;
  }
  const passed = say.steps.filter((s) => s.ok).length;
  if (o.json) {
    io.out(JSON.stringify({ ok: code === 0, exitCode: code, mode: 'loopback', url, steps: say.steps }, null, 2) + '\n');
  } else {
    say.note(code === 0
      ? `\nall ${passed} checks passed. Status pages: ${url}  (/leases, /nodes, /dns, /ntp, /explain, /metrics)` +
        (o.once ? '' : `\nTry: lanctl status --socket ${dir}/lanha.sock · lanctl explain laptop.demo.lan --socket ${dir}/lanha.sock · dig @127.0.0.1 -p ${p + 53} laptop.demo.lan`) +
        '\nNot here (it needs root and network namespaces): two nodes and a witness, a VIP, a real dhclient, `lanctl failover` and kill -9 with the gap per protocol.'
      : `\n${say.steps.length - passed} check(s) failed; the daemon log is below.\n${logLines.slice(-20).join('')}`);
  }
  if (code === 0 && !o.once && !signal.aborted) {
    say.note('running until Ctrl-C ...');
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  try {
    await daemon?.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return signal.aborted ? DEMO_EXIT.interrupted : code;
}
