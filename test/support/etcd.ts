import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { which, type LabHost } from './netns.js';

// A real etcd cluster for tests: `etcd` (Debian etcd-server) members on loopback with ports the
// kernel picked, data dirs in one tmp dir, fast timers (50 ms heartbeat, 500 ms election: leases
// of 1 s are allowed). Members can be killed (-9) and restarted by index; stop() ends only the
// processes it started, by PID, and removes the tmp dir.

export const ETCD_BINARY = 'etcd';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  child: ChildProcess | null;
  log: string;
}

export interface EtcdCluster {
  readonly members: EtcdMember[];
  readonly endpoints: string[];
  readonly dir: string;
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  restart(index: number): Promise<void>;
  stop(): Promise<void>;
}

export function etcdAvailable(): boolean {
  return which('etcd');
}

/** PEM files for an https etcd (client URLs) that asks clients for a certificate. */
export interface EtcdTlsFiles { ca: string; cert: string; key: string; clientCert: string; clientKey: string }

async function healthy(url: string, host: LabHost | undefined, tls: EtcdTlsFiles | undefined): Promise<boolean> {
  try {
    if (tls) {
      const t = tls;
      return await new Promise((resolve) => execFile('curl', ['-s', '--max-time', '1', '--cacert', t.ca, '--cert', t.clientCert, '--key', t.clientKey, `${url}/health`], (_e, out) => resolve(String(out).includes('"health":"true"'))));
    }
    if (host) return (await host.exec('curl', ['-s', '--max-time', '1', `${url}/health`], { timeoutMs: 3000 })).stdout.includes('"health":"true"');
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    return ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false; // not up yet
  }
}

async function waitHealthy(url: string, child: ChildProcess, ms: number, host?: LabHost, tls?: EtcdTlsFiles): Promise<void> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`etcd at ${url} exited (${child.exitCode ?? child.signalCode})`);
    if (await healthy(url, host, tls)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${url} not healthy within ${ms} ms`);
}

function launch(m: EtcdMember, initialCluster: string, state: 'new' | 'existing', host?: LabHost, tls?: EtcdTlsFiles): ChildProcess {
  const args = [
    ...(tls ? ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : []),
    '--name', m.name, '--data-dir', m.dataDir,
    '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
    '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
    '--initial-cluster', initialCluster, '--initial-cluster-state', state, '--initial-cluster-token', 'lanha-test',
    '--heartbeat-interval', '50', '--election-timeout', '500', '--log-level', 'warn', '--logger', 'zap',
  ];
  const child = host ? host.spawn(ETCD_BINARY, args) : spawn(ETCD_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d: Buffer): void => { m.log = (m.log + d.toString()).slice(-20_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return child;
}

/**
 * Starts `size` members and waits until every one reports healthy: on loopback with ports the
 * kernel picks, or in a lab namespace (`host`) on its address with ports 23790+i / 23800+i.
 */
export async function startEtcdCluster(size = 3, o: { host?: LabHost; tls?: EtcdTlsFiles } = {}): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-etcd-'));
  const members: EtcdMember[] = [];
  const host = o.host;
  const scheme = o.tls ? 'https' : 'http';
  for (let i = 0; i < size; i++) {
    const [client, peer] = host?.address ? [`${scheme}://${host.address}:${23790 + i}`, `http://${host.address}:${23800 + i}`] : [`${scheme}://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
    members.push({ name: `e${i}`, clientUrl: client, peerUrl: peer, dataDir: join(dir, `e${i}`), child: null, log: '' });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const stopOne = async (m: EtcdMember, signal: NodeJS.Signals): Promise<void> => {
    const child = m.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) { m.child = null; return; }
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
    m.child = null;
  };
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    dir,
    kill: (i, signal = 'SIGKILL') => stopOne(members[i]!, signal),
    restart: async (i) => {
      const m = members[i]!;
      await stopOne(m, 'SIGKILL');
      m.child = launch(m, initialCluster, 'existing', host, o.tls);
      await waitHealthy(m.clientUrl, m.child, 15_000, host, o.tls);
    },
    stop: async () => {
      for (const m of members) await stopOne(m, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const m of members) m.child = launch(m, initialCluster, 'new', host, o.tls);
    for (const m of members) await waitHealthy(m.clientUrl, m.child!, 20_000, host, o.tls);
  } catch (error) {
    const logs = members.map((m) => `--- ${m.name}\n${m.log.slice(-2000)}`).join('\n');
    await cluster.stop();
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logs}`);
  }
  return cluster;
}

/** The index of the member that is etcd's leader now (asks each member's status; from `host` for a cluster in a lab namespace). */
export async function etcdLeaderIndex(cluster: EtcdCluster, host?: LabHost): Promise<number> {
  for (let i = 0; i < cluster.members.length; i++) {
    const m = cluster.members[i]!;
    if (!m.child) continue;
    try {
      const url = `${m.clientUrl}/v3/maintenance/status`;
      const text = host
        ? (await host.exec('curl', ['-s', '--max-time', '1', '-X', 'POST', '-d', '{}', url], { timeoutMs: 3000 })).stdout
        : await (await fetch(url, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) })).text();
      const s = JSON.parse(text) as { leader?: string; header?: { member_id?: string } };
      if (s.leader !== undefined && s.leader === s.header?.member_id) return i;
    } catch { /* down */ }
  }
  return -1;
}

/** A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (openssl), in `dir`. */
export function makeEtcdTls(dir: string): EtcdTlsFiles {
  const script = `set -e; cd "${dir}"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=lanha-test-ca 2>/dev/null
for who in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $who.key -out $who.csr -subj /CN=$who 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > $who.ext
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 1 -extfile $who.ext 2>/dev/null
done`;
  execFileSync('bash', ['-c', script]);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), clientCert: join(dir, 'client.pem'), clientKey: join(dir, 'client.key') };
}
