import { spawn, spawnSync, execFile, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

// A network-namespace lab (integration tests and `lanctl demo`): one "switch" namespace holding a
// bridge, and hosts (namespaces) joined to it by veth pairs. Every name starts with `lh` and a random suffix, every
// host gets its own /etc/netns/<ns>/resolv.conf (DHCP client hooks write /etc/resolv.conf, and a
// namespace does not isolate files), and destroy() kills only the processes the lab started, by
// PID, then deletes the namespaces. Traffic stays inside these namespaces.

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LabHost {
  readonly ns: string;
  /** The host's interface inside its namespace. */
  readonly ifname: string;
  readonly address: string | null;
  exec(command: string, args?: readonly string[], options?: { timeoutMs?: number; input?: string }): Promise<ExecResult>;
  spawn(command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function which(tool: string): boolean {
  const dirs = (process.env['PATH'] ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  return dirs.some((d) => d !== '' && existsSync(`${d}/${tool}`));
}

async function run(command: string, args: readonly string[], timeoutMs = 20_000): Promise<ExecResult> {
  try {
    const { stdout, stderr } = await execFileAsync(command, [...args], { timeout: timeoutMs, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean; signal?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: (e.stderr ?? '') + (e.killed ? `\n(timed out after ${timeoutMs} ms)` : '') };
  }
}

async function must(command: string, args: readonly string[]): Promise<void> {
  const r = await run(command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

function resolvConfHash(): string {
  try {
    return createHash('sha256').update(readFileSync('/etc/resolv.conf')).digest('hex');
  } catch {
    return 'absent';
  }
}

/** Labs not destroyed yet: the process's exit removes what they made even when destroy() never ran. */
const liveLabs = new Set<Lab>();
let exitHookSet = false;

/** This process's identity that survives PID reuse: its PID and its start time (/proc/PID/stat field 22). */
function processIdentity(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid}:${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return null;
  }
}

/**
 * One file per lab namespace saying which process made it (not in /etc/netns/<ns>/: `ip netns exec`
 * bind-mounts every file there over /etc).
 */
const OWNERS_DIR = '/run/lanha-lab-owners';

/** Where `ip netns` keeps a named namespace (its bind mount). */
const namespaceFile = (ns: string): string => `/run/netns/${ns}`;

/**
 * Deletes the named network namespace, synchronously. One already gone (a second cleanup, a test
 * that deleted it itself, or never made) is nothing to do and says nothing: `ip netns del` would
 * print "Cannot remove namespace file" into the test's output. One that is there and cannot be
 * deleted throws with `ip`'s own words.
 */
export function deleteNamespace(ns: string): void {
  if (!existsSync(namespaceFile(ns))) return;
  const r = spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8', timeout: 5000 });
  if (r.status === 0 || !existsSync(namespaceFile(ns))) return;
  const why = r.error?.message ?? (r.stderr.trim() || `exit status ${r.status}`);
  throw new Error(`could not delete network namespace ${ns}: ${why}`);
}

/**
 * Removes one namespace now, synchronously (process exit, or a dead owner's leftovers): kills what
 * still runs inside it (only processes of a lab namespace: started by the lab, or orphaned children
 * of a daemon a test killed with SIGKILL), deletes it and its /etc/netns directory. Throws when the
 * namespace is there and stays (after the rest is removed).
 */
function removeNamespaceSync(ns: string): void {
  if (existsSync(namespaceFile(ns))) {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 }).stdout ?? '';
    for (const pid of pids.split(/\s+/).filter((p) => /^\d+$/.test(p))) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone already */ }
    }
  }
  try {
    deleteNamespace(ns);
  } finally {
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    rmSync(`${OWNERS_DIR}/${ns}`, { force: true });
  }
}

/** Removes each namespace (all are tried); the errors of those that stayed, one line each. */
function removeNamespacesSync(names: readonly string[]): string[] {
  const errors: string[] = [];
  for (const ns of names) {
    try { removeNamespaceSync(ns); } catch (err) { errors.push((err as Error).message); }
  }
  return errors;
}

export class Lab {
  readonly id: string;
  /** Every namespace, veth and bridge name starts with this ("lh" for tests, "lhd" for lanctl demo). */
  readonly prefix: string;
  readonly switchNs: string;
  readonly bridge: string;
  readonly hosts: LabHost[] = [];
  #namespaces: string[] = [];
  #children = new Set<ChildProcess>();
  #hostCount = 0;
  #linkCount = 0;
  #resolvHash: string;
  #destroyed = false;

  private constructor(id: string, prefix: string) {
    this.id = id;
    this.prefix = prefix;
    this.switchNs = `${prefix}${id}-sw`;
    this.bridge = `${prefix}${id}br`;
    this.#resolvHash = resolvConfHash();
  }

  static async create(prefix = 'lh'): Promise<Lab> {
    Lab.sweepStale(prefix); // what earlier processes of this prefix, killed outright, left behind
    const lab = new Lab(randomBytes(2).toString('hex'), prefix);
    liveLabs.add(lab);
    if (!exitHookSet) {
      exitHookSet = true;
      // A test runner that times a test out ends the process before any finally can await
      // destroy(): what is left goes here, synchronously.
      process.on('exit', () => { for (const l of liveLabs) l.destroySync(); });
    }
    try {
      await lab.#addNamespace(lab.switchNs);
      await must('ip', ['-n', lab.switchNs, 'link', 'add', lab.bridge, 'type', 'bridge']);
      await must('ip', ['-n', lab.switchNs, 'link', 'set', lab.bridge, 'up']);
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  /** Adds a host namespace joined to the bridge; `address` like "10.99.0.1/24" or null (a DHCP client). */
  async addHost(role: string, address: string | null, extraAddresses: readonly string[] = []): Promise<LabHost> {
    const index = this.#hostCount++;
    const ns = `${this.prefix}${this.id}-${role}`.slice(0, 30);
    const inner = `${this.prefix}${this.id}v${index}a`;
    const outer = `${this.prefix}${this.id}v${index}b`;
    await this.#addNamespace(ns);
    await must('ip', ['link', 'add', inner, 'netns', ns, 'type', 'veth', 'peer', 'name', outer, 'netns', this.switchNs]);
    await must('ip', ['-n', this.switchNs, 'link', 'set', outer, 'master', this.bridge]);
    await must('ip', ['-n', this.switchNs, 'link', 'set', outer, 'up']);
    await must('ip', ['-n', ns, 'link', 'set', inner, 'up']);
    for (const a of [address, ...extraAddresses]) if (a !== null) await must('ip', ['-n', ns, 'addr', 'add', a, 'dev', inner]);
    const host = this.#host(ns, inner, address === null ? null : address.split('/')[0]!);
    this.hosts.push(host);
    return host;
  }

  /**
   * A second veth from an existing host to the bridge, with `address` on it (a second interface of
   * the same machine, e.g. for another stack beside lanha). Goes away with the host's namespace.
   */
  async addLink(host: LabHost, address: string): Promise<{ ifname: string; bridgePort: string }> {
    const index = this.#linkCount++;
    const inner = `${this.prefix}${this.id}k${index}a`;
    const outer = `${this.prefix}${this.id}k${index}b`;
    await must('ip', ['link', 'add', inner, 'netns', host.ns, 'type', 'veth', 'peer', 'name', outer, 'netns', this.switchNs]);
    await must('ip', ['-n', this.switchNs, 'link', 'set', outer, 'master', this.bridge]);
    await must('ip', ['-n', this.switchNs, 'link', 'set', outer, 'up']);
    await must('ip', ['-n', host.ns, 'addr', 'add', address, 'dev', inner]);
    await must('ip', ['-n', host.ns, 'link', 'set', inner, 'up']);
    return { ifname: inner, bridgePort: outer };
  }

  /**
   * Joins the machine's own (root) namespace to the bridge with `address` (like "10.77.0.254/24"),
   * so a browser on the machine reaches the lab. The pair goes away with the switch namespace.
   */
  async addRootLink(address: string): Promise<string> {
    const inner = `${this.prefix}${this.id}h`;
    const outer = `${this.prefix}${this.id}hb`;
    await must('ip', ['link', 'add', inner, 'type', 'veth', 'peer', 'name', outer, 'netns', this.switchNs]);
    await must('ip', ['-n', this.switchNs, 'link', 'set', outer, 'master', this.bridge]);
    await must('ip', ['-n', this.switchNs, 'link', 'set', outer, 'up']);
    await must('ip', ['addr', 'add', address, 'dev', inner]);
    await must('ip', ['link', 'set', inner, 'up']);
    return inner;
  }

  /** Runs a command in the switch namespace (tc netem on a host's bridge port, and the like). */
  async execSwitch(command: string, args: readonly string[]): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.switchNs, command, ...args]);
  }

  /** The bridge-side interface of host number `index` (for tc/netem). */
  bridgePort(index: number): string {
    return `${this.prefix}${this.id}v${index}b`;
  }

  /** True when the host's /etc/resolv.conf is what it was when the lab was made. */
  resolvConfUnchanged(): boolean {
    return resolvConfHash() === this.#resolvHash;
  }

  track(child: ChildProcess): ChildProcess {
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Ends what the lab started and deletes its namespaces; throws naming any namespace that stayed. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all([...this.#children].map((child) => stopChild(child)));
    const errors = this.#removeNamespaces();
    if (errors.length > 0) throw new Error(`lab ${this.id} left namespaces behind: ${errors.join('; ')}`);
  }

  /**
   * destroy() for a process that is exiting: SIGKILL to what the lab started, then the namespaces;
   * one that stayed is said on stderr (nothing can be thrown to at exit).
   */
  destroySync(): void {
    this.#destroyed = true;
    for (const child of this.#children) {
      try { child.kill('SIGKILL'); } catch { /* gone already */ }
    }
    for (const e of this.#removeNamespaces()) process.stderr.write(`*** lab ${this.id}: ${e}\n`);
  }

  #removeNamespaces(): string[] {
    const errors = removeNamespacesSync([...this.#namespaces].reverse());
    this.#namespaces = [];
    liveLabs.delete(this);
    return errors;
  }

  /**
   * Removes the namespaces of `prefix` labs whose process is gone (killed by SIGKILL, where no exit
   * hook runs): each lab namespace names its owner (PID and start time) in OWNERS_DIR.
   * Namespaces without that file, or of a live owner, are left alone.
   */
  static sweepStale(prefix: string): string[] {
    const removed: string[] = [];
    let names: string[];
    try { names = readdirSync(OWNERS_DIR); } catch { return removed; }
    for (const ns of names) {
      if (!ns.startsWith(prefix)) continue;
      let owner: { prefix?: unknown; owner?: unknown };
      try { owner = JSON.parse(readFileSync(`${OWNERS_DIR}/${ns}`, 'utf8')) as typeof owner; } catch { continue; }
      if (owner.prefix !== prefix || typeof owner.owner !== 'string') continue;
      if (processIdentity(Number(owner.owner.split(':')[0])) === owner.owner) continue;
      const [error] = removeNamespacesSync([ns]);
      if (error === undefined) removed.push(ns);
      else process.stderr.write(`*** stale lab namespace not removed: ${error}\n`);
    }
    return removed;
  }

  async #addNamespace(ns: string): Promise<void> {
    await must('ip', ['netns', 'add', ns]);
    this.#namespaces.push(ns);
    mkdirSync(OWNERS_DIR, { recursive: true });
    writeFileSync(`${OWNERS_DIR}/${ns}`, JSON.stringify({ prefix: this.prefix, owner: processIdentity(process.pid) }));
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${ns}/resolv.conf`, '# lanha test lab: this namespace has its own resolver file\nnameserver 127.0.0.1\n');
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  #host(ns: string, ifname: string, address: string | null): LabHost {
    return {
      ns,
      ifname,
      address,
      exec: (command, args = [], options = {}) => {
        if (options.input !== undefined) {
          return new Promise((resolve) => {
            const child = this.track(spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
            let stdout = '', stderr = '';
            child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
            child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
            const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
            child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? 1, stdout, stderr }); });
            child.stdin!.end(options.input);
          });
        }
        return run('ip', ['netns', 'exec', ns, command, ...args], options.timeoutMs ?? 20_000);
      },
      spawn: (command, args = [], options = {}) => this.track(spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: 'pipe', ...options })),
    };
  }
}

/** SIGTERM, then SIGKILL after a second; resolves when the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 1000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill('SIGTERM');
  });
}

/**
 * The name prefix of test labs: "lh", or LANHA_LAB_PREFIX (e.g. "lhfl") so that several people
 * testing on one machine each name (and sweep) only their own namespaces, veths and bridges. Names
 * must stay within the kernel's 15 characters for links: at most 6 characters, starting with "lh".
 */
export function labPrefix(value: string | undefined): string {
  if (value === undefined || value === '') return 'lh';
  if (!/^lh[a-z0-9]{0,4}$/.test(value)) throw new Error(`LANHA_LAB_PREFIX=${value} is not a lab prefix: "lh" and up to 4 more lower-case letters or digits (link names hold 15 characters)`);
  return value;
}

/**
 * Creates a lab, runs `body`, and always destroys the lab: failures included, and on a test timeout
 * (the exit hook) too; labs of test processes killed outright are swept at the next Lab.create of their prefix.
 */
export async function withLab<T>(body: (lab: Lab) => Promise<T>): Promise<T> {
  const prefix = labPrefix(process.env['LANHA_LAB_PREFIX']);
  const lab = await Lab.create(prefix);
  try {
    return await body(lab);
  } finally {
    await lab.destroy();
  }
}
