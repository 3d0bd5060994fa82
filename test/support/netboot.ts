import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runLanctl, serveDaemon, type ServedDaemon } from './daemon.js';
import { MARKER_FILE, netbootInitrd, placeFile, type NetbootFixtures } from './netboot-fixtures.js';
import { stopChild, which, type Lab, type LabHost } from './netns.js';
import { LANCTL } from './paths.js';
import { UbootConsole, ubootArgs, ubootUnavailable } from './qemu.js';
import { makeKey, startSshd, type TestSshd } from './node-sshd.js';

// The arm64 netboot chain of issue 11 section 4 as a reusable harness (the lab test and
// bench/netboot.ts both drive it): a LAN node namespace on a lab bridge serving DHCP + TFTP (lanha,
// or dnsmasq for the benchmark's baseline) and an sshd that serves the root file system tree; a
// qemu-system-aarch64 board with U-Boot (u-boot-qemu) on a tap in the same bridge, a fixed MAC on
// `virtio-net-device` (virtio-net-pci would make U-Boot send from 52:52:52:52:52:52) and an ext4
// disk that keeps the synced tree between boots. U-Boot: DHCP -> boot.scr.uimg -> kernel and
// initramfs over TFTP -> booti; the initramfs: DHCP -> rsync over ssh with a pinned host key ->
// "NETBOOT MARKER ..." -> poweroff.

const exec = promisify(execFile);

export const SUBNET = '10.97.0';
export const SERVER_IP = `${SUBNET}.1`;
export const NODE_MAC = '52:54:00:4e:42:01';
export const NODE_IP = `${SUBNET}.50`;
export const NODE_NAME = 'node1';

/** Why the netboot harness cannot run here (besides root and `ip`), or null. */
export function netbootUnavailable(): string | null {
  const u = ubootUnavailable();
  if (u !== null) return u;
  const missing = [['sshd', 'openssh-server'], ['ssh-keygen', 'openssh-client'], ['mkimage', 'u-boot-tools'], ['mkfs.ext4', 'e2fsprogs'], ['rsync', 'rsync']].filter(([t]) => !which(t!));
  return missing.length === 0 ? null : `missing ${missing.map(([t, p]) => `${t} (apt-get install ${p})`).join(', ')}`;
}

/**
 * The baseline's U-Boot script (as a `mkimage -T script` image, served from disk by either server):
 * the initramfs rsyncs the tree at `path` without the gate.
 */
export function bootScript(path: string): string {
  const pull = `lanha.src=${path}`;
  return [
    'echo lanha-netboot: kernel and initramfs from ${serverip}',
    'tftpboot ${kernel_addr_r} netboot/Image',
    'tftpboot ${ramdisk_addr_r} netboot/initrd.img',
    `setenv bootargs console=ttyAMA0 panic=1 loglevel=4 lanha.server=\${serverip} lanha.user=root ${pull} lanha.disk=/dev/vda`,
    'booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}',
    '',
  ].join('\n');
}

/** `mkimage -A arm -O linux -T script -C none -n NAME` of `script`, written to `out`. */
export async function mkimageScript(script: string, out: string, name = 'lanha-netboot'): Promise<void> {
  const source = `${out}.txt`;
  writeFileSync(source, script);
  await exec('mkimage', ['-A', 'arm', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', name, '-d', source, out], { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } });
  rmSync(source, { force: true });
  chmodSync(out, 0o644);
}

/** A copy of a legacy image with one payload byte flipped: the header CRC holds, the data CRC not. */
export function breakDataCrc(image: Buffer): Buffer {
  const bad = Buffer.from(image);
  const at = 64 + 8 + 1; // inside the script text, after the size table
  bad[at] = bad[at]! ^ 0x20;
  return bad;
}

/** A root file system tree of `count` small files plus the marker file; returns the marker. */
export function makeTree(dir: string, count: number, marker: string): void {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  for (let i = 0; i < count; i++) {
    const sub = join(dir, 'usr', 'share', `d${i % 10}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.dat`), randomBytes(256 + ((i * 977) % 4096)));
  }
  writeFileSync(join(dir, MARKER_FILE), `${marker}\n`);
}

/** Points of a boot, timed from U-Boot's first DHCP request (BootResult.milestones). */
const MILESTONES: ReadonlyArray<[string, RegExp]> = [
  ['uboot-dhcp-bound', /DHCP client bound to address/],
  ['script', /## Executing script at/],
  ['kernel-loaded', /Filename 'netboot\/Image'[\s\S]*?Bytes transferred/],
  ['initrd-loaded', /Filename 'netboot\/initrd\.img'[\s\S]*?Bytes transferred/],
  ['kernel-start', /Starting kernel/],
  ['init', /NETBOOT init/],
  ['linux-dhcp-bound', /NETBOOT dhcp [^\n]*\n/],
  ['rsync-done', /NETBOOT SYNC exit=[^\n]*\n/],
  ['marker', /NETBOOT MARKER [^\n]*\n/],
];

export interface BootResult {
  /** ms from U-Boot's first DHCP request to each milestone seen. */
  milestones: Record<string, number>;
  console: string;
  exitCode: number | null;
  /** Monotonic ms when U-Boot sent its first DHCP request ("BOOTP broadcast 1"). */
  firstDhcpMs: number;
  /** Monotonic ms when the marker line arrived. */
  markerMs: number;
  marker: string;
  syncExit: number;
  /** The initramfs's checklist verdict ("ok" / "bad") and the report's exit code (fleet chain), else null. */
  verdict: string | null;
  reportExit: number | null;
  /** rsync --stats "Number of regular files transferred". */
  filesTransferred: number;
  /** rsync --stats "Total bytes received" (what the node pulled). */
  bytesReceived: number;
}

export type Server = 'lanha' | 'dnsmasq';

export interface NetbootLabOptions {
  fixtures: NetbootFixtures;
  server: Server;
  /** Files in the initial tree. */
  files?: number;
  /**
   * lanha's whole fleet chain, as a deployed site runs it: the board is an inventory node (config
   * `nodes:`), lanha renders its boot.scr.uimg from a profile, and the initramfs pulls committed
   * generations through `lanctl internal ssh-gate` (pull, checklist, report). Without it (the
   * benchmark's like-for-like baseline, and dnsmasq): a mkimage-made script, a DHCP reservation and
   * a plain rsync of the tree, which either server can serve.
   */
  fleet?: boolean;
  log?: (line: string) => void;
}

/**
 * One LAN node namespace serving the chain, one disk for the board. Create with NetbootLab.start
 * inside withLab; stop() ends what it started (the lab kills the rest and deletes namespaces).
 */
export class NetbootLab {
  readonly dir: string;
  readonly tftpRoot: string;
  readonly tree: string;
  readonly disk: string;
  readonly tap: string;
  daemon: ServedDaemon | null = null;
  dnsmasq: ChildProcess | null = null;
  sshd: TestSshd | null = null;
  host!: LabHost;
  #lab: Lab;
  #options: NetbootLabOptions;

  private constructor(lab: Lab, options: NetbootLabOptions) {
    this.#lab = lab;
    this.#options = options;
    this.dir = mkdtempSync(join(tmpdir(), 'lanha-netboot-'));
    chmodSync(this.dir, 0o755);
    this.tftpRoot = join(this.dir, 'tftp');
    this.tree = join(this.dir, 'rootfs', 'gen-1');
    this.disk = join(this.dir, 'node1-disk.img');
    this.tap = `lh${lab.id}nt`;
  }

  static async start(lab: Lab, options: NetbootLabOptions): Promise<NetbootLab> {
    const nl = new NetbootLab(lab, options);
    try {
      await nl.#setup();
    } catch (error) {
      await nl.stop();
      throw error;
    }
    return nl;
  }

  get socket(): string { return join(this.dir, 'lanha.sock'); }
  get config(): string { return join(this.dir, 'lanha.yaml'); }

  async #setup(): Promise<void> {
    const { fixtures } = this.#options;
    this.host = await this.#lab.addHost('lan', `${SERVER_IP}/24`);
    mkdirSync(join(this.tftpRoot, 'netboot'), { recursive: true });
    chmodSync(this.tftpRoot, 0o755);
    makeTree(this.tree, this.#options.files ?? 300, `gen-1-${randomBytes(4).toString('hex')}`);

    const clientKey = join(this.dir, 'node_id_ed25519');
    const clientPublic = makeKey(clientKey);
    // Through the gate the key may only pull, fetch a checklist and report (cluster/deploy/README.md).
    const keyLine = this.#options.fleet === true ? `restrict,command="${process.execPath} ${LANCTL} internal ssh-gate --config ${this.config}" ${clientPublic}` : clientPublic;
    this.sshd = await startSshd(this.#lab, this.host, join(this.dir, 'sshd'), { authorizedKeys: [keyLine] });
    placeFile(fixtures.kernel, join(this.tftpRoot, 'netboot', 'Image'));
    const initrd = netbootInitrd(fixtures, [
      { path: 'etc/netboot/id_ed25519', data: readFileSync(clientKey) },
      // The LAN node's host key, pinned (the node runs ssh with StrictHostKeyChecking=yes).
      { path: 'etc/netboot/known_hosts', data: `${SERVER_IP} ${this.sshd.hostKey.split(' ').slice(0, 2).join(' ')}\n`, mode: 0o644 },
    ]);
    writeFileSync(join(this.tftpRoot, 'netboot', 'initrd.img'), initrd, { mode: 0o644 });
    if (this.#options.fleet !== true) await mkimageScript(bootScript(this.tree), join(this.tftpRoot, 'boot.scr.uimg'));

    await this.resetDisk();

    await this.#lab.execSwitch('ip', ['tuntap', 'add', 'dev', this.tap, 'mode', 'tap']);
    for (const args of [['link', 'set', this.tap, 'master', this.#lab.bridge], ['link', 'set', this.tap, 'up']]) {
      const r = await this.#lab.execSwitch('ip', args);
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
    }
    if (this.#options.server === 'lanha') await this.#startLanha();
    else await this.#startDnsmasq();
  }

  /** The `profiles:`, `boot:`, `nodes:` and `deploy:` blocks of the fleet chain. */
  #fleetYaml(): string {
    if (this.#options.fleet !== true) return '';
    return `profiles:
  arm64-netboot:
    arch: arm64
    kernel: netboot/Image
    initrd: netboot/initrd.img
    bootargs: "console=ttyAMA0 panic=1 loglevel=4 lanha.server={{server}} lanha.user=root lanha.gen={{generation}} lanha.disk=/dev/vda"
boot:
  defaultProfile: arm64-netboot
nodes:
  - { name: ${NODE_NAME}, mac: "${NODE_MAC}", ip: ${NODE_IP}, profile: arm64-netboot }
deploy:
  targets:
    - { name: ${NODE_NAME}, host: ${NODE_IP} }
`;
  }

  async #startLanha(): Promise<void> {
    const config = this.config;
    const reservation = this.#options.fleet === true ? '' : `      reservations:
        - { mac: "${NODE_MAC}", ip: ${NODE_IP}, hostname: ${NODE_NAME} }
`;
    writeFileSync(config, `node:
  name: lan-a
  address: ${SERVER_IP}
  stateDir: ${this.dir}/state
  controlSocket: ${this.socket}
  logLevel: info
dhcp:
  subnets:
    - subnet: ${SUBNET}.0/24
      pools: [${SUBNET}.100-${SUBNET}.150]
      router: [${SERVER_IP}]
      dns: [${SERVER_IP}]
      domain: lab.lan
      leaseTime: 10m
${reservation}  boot:
    - { name: uboot-arm64, match: { arch: [22] }, nextServer: ${SERVER_IP}, bootfile: boot.scr.uimg }
tftp:
  port: 69
  listen: [${SERVER_IP}]
  root: ${this.tftpRoot}
dns:
  port: 53
  listen: [${SERVER_IP}]
  zones:
    - name: lab.lan
      leases: true
      records:
        - "lan-a A ${SERVER_IP}"
${this.#fleetYaml()}`);
    this.daemon = await serveDaemon(config, { command: ['ip', 'netns', 'exec', this.host.ns, process.execPath, LANCTL], timeoutMs: 60_000 });
  }

  async #startDnsmasq(): Promise<void> {
    // The baseline a hand-built cluster runs: dnsmasq for DHCP + TFTP (its defaults otherwise).
    const args = ['--keep-in-foreground', '--log-facility=-', '--conf-file=/dev/null', '--port=0', `--listen-address=${SERVER_IP}`, '--bind-interfaces',
      `--dhcp-range=${SUBNET}.100,${SUBNET}.150,255.255.255.0,10m`, `--dhcp-host=${NODE_MAC},${NODE_IP},${NODE_NAME}`, `--dhcp-option=option:router,${SERVER_IP}`,
      `--dhcp-boot=boot.scr.uimg,,${SERVER_IP}`, '--enable-tftp', `--tftp-root=${this.tftpRoot}`, `--dhcp-leasefile=${join(this.dir, 'dnsmasq.leases')}`, `--pid-file=${join(this.dir, 'dnsmasq.pid')}`];
    const child = this.host.spawn('dnsmasq', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    this.dnsmasq = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dnsmasq not ready within 60 s:\n${out}`)), 60_000);
      const check = (): void => { if (/DHCP, IP range/.test(out)) { clearTimeout(timer); resolve(); } };
      child.stderr!.on('data', check);
      child.stdout!.on('data', check);
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`dnsmasq exited (${code}):\n${out}`)); });
    });
  }

  /** A new empty ext4 file system on the board's disk (the next boot syncs the whole tree). */
  async resetDisk(): Promise<void> {
    rmSync(this.disk, { force: true });
    await exec('truncate', ['-s', '64M', this.disk]);
    // No lazy init: the kernel would zero inode tables in the background during the first boots.
    await exec('mkfs.ext4', ['-q', '-F', '-L', 'lanha-node', '-E', 'lazy_itable_init=0,lazy_journal_init=0', this.disk]);
  }

  /** `lanctl rootfs commit` of the tree (fleet chain): returns the generation id, which the rendered script names. */
  async commitTree(): Promise<string> {
    const r = await this.lanctl(['rootfs', 'commit', this.tree, '--json']);
    if (r.code !== 0) throw new Error(`lanctl rootfs commit failed (${r.code}): ${r.stderr}${r.stdout}`);
    return (JSON.parse(r.stdout) as { generation: string }).generation;
  }

  /** Replaces one file of the tree (a new size and content), as an operator's change would. */
  changeMarker(marker: string): void {
    writeFileSync(join(this.tree, MARKER_FILE), `${marker} (changed)\n`);
  }

  /** `lanctl ARGS --socket` against the LAN node's daemon. */
  async lanctl(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return runLanctl([...args, '--socket', this.socket]);
  }

  /**
   * Boots the board once: stops autoboot (skips U-Boot's boot delay and its disk/usb scans), runs
   * `before` commands at the prompt, then `run bootcmd_dhcp` (the distro boot's DHCP target) and
   * waits (bounded) for the marker and the power-off.
   */
  async boot(options: { before?: readonly string[]; timeoutMs?: number } = {}): Promise<BootResult & { beforeOutput: string[] }> {
    const qemu = spawn('ip', ['netns', 'exec', this.#lab.switchNs, 'qemu-system-aarch64',
      ...ubootArgs({ netdev: `tap,id=n0,ifname=${this.tap},script=no,downscript=no`, mac: NODE_MAC, memoryMiB: 512, disk: this.disk })], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#lab.track(qemu);
    const exited = new Promise<number | null>((resolve) => qemu.once('exit', (code) => resolve(code)));
    const console = new UbootConsole(qemu);
    // Arrival time of the raw console text, for the milestones of the boot.
    let raw = '';
    const arrivals: Array<[number, number]> = [];
    qemu.stdout!.on('data', (d: Buffer) => { raw += d.toString('latin1'); arrivals.push([raw.length, performance.now()]); });
    const at = (pattern: RegExp, fromRaw: number): number | null => {
      const m = pattern.exec(raw.slice(fromRaw));
      if (m === null) return null;
      const end = fromRaw + m.index + m[0].length;
      return arrivals.find(([length]) => length >= end)?.[1] ?? null;
    };
    try {
      await console.prompt(120_000);
      const beforeOutput: string[] = [];
      for (const command of options.before ?? []) beforeOutput.push(await console.run(command, 60_000));
      const from = console.output.length;
      const fromRaw = raw.length;
      console.send('run bootcmd_dhcp\n');
      await console.waitFor(/BOOTP broadcast 1\b/, 30_000, from);
      const firstDhcpMs = performance.now();
      const end = await console.waitFor(/NETBOOT (MARKER (.*)|FAIL .*)\n/, options.timeoutMs ?? 300_000, from);
      const markerMs = performance.now();
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
      const text = console.output.slice(from);
      const tail = (n: number): string => text.replace(/#{8,}\s*/g, '#...').slice(-n);
      if (end[1]!.startsWith('FAIL')) throw new Error(`the node failed: ${end[0]}; console:\n${tail(3000)}`);
      if (code === 'timeout') throw new Error(`qemu still running 30 s after the marker; console:\n${tail(2000)}`);
      const stat = (re: RegExp): number => Number((re.exec(text)?.[1] ?? 'NaN').replaceAll(',', ''));
      const milestones: Record<string, number> = {};
      for (const [name, pattern] of MILESTONES) {
        const ms = at(pattern, fromRaw);
        if (ms !== null) milestones[name] = Math.round(ms - firstDhcpMs);
      }
      return {
        console: text,
        milestones,
        beforeOutput,
        exitCode: code,
        firstDhcpMs,
        markerMs,
        marker: end[2]!.trim(),
        syncExit: stat(/NETBOOT SYNC exit=(\d+)/),
        verdict: /NETBOOT VERIFY (\w+)/.exec(text)?.[1] ?? null,
        reportExit: /NETBOOT REPORT exit=(\d+)/.test(text) ? stat(/NETBOOT REPORT exit=(\d+)/) : null,
        filesTransferred: stat(/Number of regular files transferred: ([\d,]+)/),
        bytesReceived: stat(/Total bytes received: ([\d,]+)/),
      };
    } finally {
      await stopChild(qemu);
    }
  }

  async stop(): Promise<void> {
    await this.daemon?.stop();
    if (this.dnsmasq !== null) await stopChild(this.dnsmasq);
    await this.sshd?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
