import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, withLab, type Lab, type LabHost } from './netns.js';
import { runLanctl, serveDaemon, type CliRun, type ServedDaemon } from './daemon.js';
import { LANCTL } from './paths.js';
import { callDaemonOk } from '../../lib/control-client.js';
import { makeKey, startSshd, type SshdOptions, type TestSshd } from './node-sshd.js';

// The set-up the deploy integration tests share: a lab with the LAN member `lan` at 10.N.0.1 (the
// daemon runs in its namespace) and compute nodes at 10.N.0.11, .12, ... (each its own namespace,
// an sshd started by the test with the deploy key authorised), a scratch directory removed at the
// end, the daemon's config (`node` block, deploy user, key and targets, plus the test's own deploy
// lines), lanctl bound to that config, and job views read the way `lanctl deploy jobs ID --json`
// prints them.

export interface NodeView {
  name: string;
  state: string;
  error?: string;
  installed?: string[];
  sent?: number;
}

export interface JobView {
  state: string;
  sha256?: string[];
  nodes: NodeView[];
}

export interface DeployLab {
  lab: Lab;
  dir: string;
  lan: LabHost;
  /** The compute nodes' namespaces, by name. */
  hosts: Record<string, LabHost>;
  /** The daemon's deploy key (deploy.identityFile) and its public line. */
  clientKey: string;
  clientPub: string;
  config: string;
  address(node: string): string;
  /** Starts an sshd for `node` (state under dir/<dirName>, default sshd-<node>) that lets the deploy key in. */
  sshd(node: string, options?: Omit<SshdOptions, 'authorizedKeys'>, dirName?: string): Promise<TestSshd>;
  /** Writes the config with `deployLines` (YAML, indented by two spaces) under `deploy:` and starts the daemon in `lan`. */
  serve(deployLines?: string): Promise<ServedDaemon>;
  lanctl(...args: string[]): Promise<CliRun>;
  /** The job id a `lanctl deploy ...` run printed. */
  jobId(stdout: string): string;
  view(job: string): Promise<JobView>;
  /** The job's view once it no longer runs (polled; at most ~2 minutes). */
  settle(job: string): Promise<JobView>;
  /** Waits until the job's first node has sent more than `bytes` (live progress; at most ~15 s). */
  sentMoreThan(job: string, bytes: number): Promise<void>;
  /** Slows the link into `node` (tc tbf on its bridge port). */
  shape(node: string, rate: string, latency: string): Promise<void>;
  unshape(node: string): Promise<void>;
  /** Takes the link into `node` down or up (its bridge port): every packet either way is dropped, nothing is refused. */
  linkUp(node: string, up: boolean): Promise<void>;
}

interface TapLike {
  teardown(fn: () => unknown): void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  skip: (...args: any[]) => unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  fail: (...args: any[]) => unknown;
}

export interface DeployLabOptions {
  /** The lab's subnet is 10.<subnet>.0.0/24 (one per test file). */
  subnet: number;
  nodes: readonly string[];
  /** Tools the test needs besides ip, sshd and ssh-keygen. */
  tools?: readonly string[];
  /** Prefix of the scratch directory's name. */
  name: string;
}

/** Runs `body` in a fresh deploy lab; skips (or fails under CI) when the lab cannot run here. */
export async function withDeployLab(t: TapLike, options: DeployLabOptions, body: (d: DeployLab) => Promise<void>): Promise<void> {
  if (!requireLab(t, ['sshd', 'ssh-keygen', ...(options.tools ?? [])])) return;
  const dir = mkdtempSync(join(tmpdir(), options.name));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const net = `10.${options.subnet}.0`;
  await withLab(async (lab) => {
    const lan = await lab.addHost('lan', `${net}.1/24`);
    const hosts: Record<string, LabHost> = {};
    const ports: Record<string, string> = {};
    for (const [i, node] of options.nodes.entries()) {
      hosts[node] = await lab.addHost(node, `${net}.${11 + i}/24`);
      ports[node] = lab.bridgePort(i + 1);
    }
    const clientKey = join(dir, 'deploy_ed25519');
    const clientPub = makeKey(clientKey);
    const config = join(dir, 'lanha.yaml');
    const address = (node: string): string => `${net}.${11 + options.nodes.indexOf(node)}`;
    const port = (node: string): string => {
      const p = ports[node];
      if (p === undefined) throw new Error(`${node} is not a node of this lab`);
      return p;
    };
    const lanctl = (...args: string[]) => runLanctl([...args, '--config', config], { timeoutMs: 120_000 });
    const view = async (job: string): Promise<JobView> => JSON.parse((await lanctl('deploy', 'jobs', job, '--json')).stdout) as JobView;
    const switchMust = async (args: string[]): Promise<void> => {
      const r = await lab.execSwitch(args[0]!, args.slice(1));
      if (r.code !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
    };
    await body({
      lab, dir, lan, hosts, clientKey, clientPub, config, address,
      sshd: (node, sshdOptions = {}, dirName = `sshd-${node}`) => startSshd(lab, hosts[node]!, join(dir, dirName), { ...sshdOptions, authorizedKeys: [clientPub] }),
      async serve(deployLines = '') {
        writeFileSync(config, `node: { name: lan-a, address: ${net}.1, stateDir: ${dir}/state, controlSocket: ${dir}/lanha.sock }
deploy:
  user: root
  identityFile: ${clientKey}
  targets:
${options.nodes.map((n) => `    - { name: ${n}, host: ${address(n)} }`).join('\n')}
${deployLines}`);
        const daemon = await serveDaemon(config, { command: ['ip', 'netns', 'exec', lan.ns, process.execPath, LANCTL], timeoutMs: 60_000 });
        t.teardown(() => daemon.stop());
        return daemon;
      },
      lanctl,
      jobId: (stdout) => {
        const m = /^job (\S+)$/m.exec(stdout);
        if (m === null) throw new Error(`no job id in: ${stdout}`);
        return m[1]!;
      },
      view,
      async settle(job) {
        let v = await view(job);
        for (let i = 0; i < 600 && v.state === 'running'; i++) { await new Promise((r) => setTimeout(r, 200)); v = await view(job); }
        return v;
      },
      async sentMoreThan(job, bytes) {
        for (let i = 0; i < 150; i++) {
          const live = (await callDaemonOk(join(dir, 'lanha.sock'), 'GET', `/v1/deploy/jobs?job=${job}`)) as { live: Array<{ progress?: { bytes: number } }> };
          if ((live.live[0]?.progress?.bytes ?? 0) > bytes) return;
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      shape: (node, rate, latency) => switchMust(['tc', 'qdisc', 'add', 'dev', port(node), 'root', 'tbf', 'rate', rate, 'burst', '32kbit', 'latency', latency]),
      unshape: (node) => switchMust(['tc', 'qdisc', 'del', 'dev', port(node), 'root']),
      linkUp: (node, up) => switchMust(['ip', 'link', 'set', 'dev', port(node), up ? 'up' : 'down']),
    });
  });
}
