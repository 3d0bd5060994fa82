import { writeFileSync, chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withLab, type Lab, type LabHost } from '../support/netns.js';
import { runLanctl, scratchConfig, serveDaemon, type ServedDaemon } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';

// Shared by the DHCP lab tests: a lanha daemon serving DHCP inside a lab namespace (standard ports
// 67/68 are fine there), its leases through `lanctl leases --json`, and client scripts that only
// record what the client was told into files (they never touch /etc/resolv.conf).

export interface LeaseJson { ip: string; mac: string; hostname: string | null; clientId: string | null; state: string; expiresInS: number; subnet: string }

export interface LanhaDhcp {
  daemon: ServedDaemon;
  dir: string;
  socket: string;
  leases(all?: boolean): Promise<LeaseJson[]>;
  stop(): Promise<void>;
}

/**
 * Writes `dhcpYaml` (the `dhcp:` block, indented two spaces) into a config and serves it in `host`;
 * `moreYaml` follows as further top-level blocks (e.g. `tftp:`).
 */
export async function startLanhaDhcp(host: LabHost, nodeAddress: string, dhcpYaml: string, dir?: string, moreYaml = ''): Promise<LanhaDhcp> {
  const scratch = dir === undefined ? scratchConfig('') : { dir, file: join(dir, 'lanha.yaml'), cleanup: () => undefined };
  const socket = join(scratch.dir, 'lanha.sock');
  writeFileSync(scratch.file, `node:\n  name: srv\n  address: ${nodeAddress}\n  stateDir: ${scratch.dir}/state\n  controlSocket: ${socket}\n  logLevel: info\ndhcp:\n${dhcpYaml}${moreYaml}`);
  const daemon = await serveDaemon(scratch.file, { command: ['ip', 'netns', 'exec', host.ns, process.execPath, LANCTL] });
  return {
    daemon,
    dir: scratch.dir,
    socket,
    async leases(all = false) {
      const r = await runLanctl(['leases', '--json', '--socket', socket, ...(all ? ['--all'] : [])]);
      if (r.code !== 0) throw new Error(`lanctl leases failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout) as LeaseJson[];
    },
    async stop() {
      await daemon.stop();
      scratch.cleanup();
    },
  };
}

// A line no `env` output can contain (a variable name is never empty), so it only ends a block.
const BLOCK_END = '=END=';

/**
 * A shell script that runs `body` (e.g. puts the leased address on the interface) and then appends
 * the client's environment to `<dir>/<name>.env`. The record comes last: a test that sees the block
 * and goes on to use the address must find the body done, not still running in the client's hook.
 */
export function recordingScript(dir: string, name: string, body = ''): string {
  const path = join(dir, `${name}.sh`);
  writeFileSync(path, `#!/bin/sh\n${body}\n{ echo "=== $1 $reason"; env; echo "${BLOCK_END}"; } >> ${join(dir, `${name}.env`)}\nexit 0\n`);
  chmodSync(path, 0o755);
  return path;
}

/**
 * The last complete block of KEY=VALUE lines recorded for an event (a line "=== ..." starts each block,
 * BLOCK_END closes it). A block the hook is still writing is not complete: a reader racing the hook
 * would otherwise see the header without the values.
 */
export function lastEnv(text: string, marker: RegExp): Map<string, string> | null {
  const blocks = text.split(/^=== /m).filter((b) => marker.test(b.split('\n')[0] ?? '') && b.split('\n').includes(BLOCK_END));
  const last = blocks.at(-1);
  if (last === undefined) return null;
  const out = new Map<string, string>();
  for (const line of last.split('\n').slice(1)) {
    const eq = line.indexOf('=');
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

/**
 * Every (address, MAC) pair perfdhcp -x l lists after "Leases for REQUEST-ACK" ("<client id>,<address>,"
 * lines; client id = 01 + MAC), in its order, repeats included (an address ACKed to two MACs shows twice).
 */
export function perfdhcpAcks(out: string): Array<{ ip: string; mac: string }> {
  const at = out.indexOf('Leases for REQUEST-ACK');
  if (at < 0) return [];
  const acks: Array<{ ip: string; mac: string }> = [];
  for (const line of out.slice(at).split('\n')) {
    const m = /^01([0-9a-f]{12}),(\d+\.\d+\.\d+\.\d+),/i.exec(line.trim());
    if (m) acks.push({ ip: m[2]!, mac: m[1]!.toLowerCase().match(/../g)!.join(':') });
  }
  return acks;
}

/** Runs perfdhcp from `cli` against `server` at 100 exchanges a second (20 000 client MACs) for `seconds`; resolves with the pairs it saw ACKed. */
export function perfdhcpRun(cli: LabHost, server: string, seconds: number): Promise<Array<{ ip: string; mac: string }>> {
  const perf = cli.spawn('perfdhcp', ['-4', '-l', cli.ifname, '-r', '100', '-R', '20000', '-p', String(seconds), '-x', 'l', server]);
  let out = '';
  perf.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  perf.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  return new Promise((resolve) => perf.once('exit', () => resolve(perfdhcpAcks(out))));
}

/** Polls `check` every 200 ms until it returns a value or `timeoutMs` passes. */
export async function waitFor<T>(check: () => Promise<T | null> | T | null, timeoutMs: number): Promise<T | null> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== null) return v;
    if (Date.now() > end) return null;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A lab with a `srv` host at `serverCidr` serving `dhcpYaml` (startLanhaDhcp) and a scratch
 * directory for client scripts; both are removed after `body`, whatever it does. `moreYaml`: further
 * top-level blocks (e.g. `dns:`).
 */
export async function withDhcpLab(serverCidr: string, dhcpYaml: string, body: (lab: Lab, server: LanhaDhcp, work: string) => Promise<void>, moreYaml = ''): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'lanha-dhcp-lab-'));
  let server: LanhaDhcp | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', serverCidr);
      server = await startLanhaDhcp(srv, serverCidr.split('/')[0]!, dhcpYaml, undefined, moreYaml);
      await body(lab, server, work);
    });
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

export type { Lab };
