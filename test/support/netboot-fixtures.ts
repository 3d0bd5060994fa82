import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, utimesSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync, copyFileSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { newcArchive, parentDirs, type CpioEntry } from './cpio.js';
import { isRoot, which } from './netns.js';

// Fixtures for the arm64 netboot test (issue 11 section 4), built from Debian packages as root and
// cached OUTSIDE the repository (never committed): a Debian cloud-arm64 kernel `Image` and a busybox
// initramfs with rsync, ssh and their libraries, and the kernel modules the virtio network and disk
// need. The cache key is a digest of everything that goes in (package versions, init script, module
// list), so a new Debian kernel or a changed script builds a new directory. A lock directory keeps
// two test files from building at once. Keys are never cached: each run appends its own small
// archive with netbootInitrd().

const exec = promisify(execFile);

export const NETBOOT_CACHE = process.env['LANHA_NETBOOT_CACHE'] ?? '/var/cache/lanha-test/netboot';

/** Bumped when the layout of the built initramfs changes in a way the inputs below do not show. */
const BUILDER_VERSION = 3;
/** Bumped when the package resolution below changes. */
const RESOLVER_VERSION = 2;

/** Packages whose programs go into the initramfs (their shared libraries follow from Depends). */
const PROGRAM_PACKAGES = ['rsync', 'openssh-client'] as const;
const PROGRAMS = ['usr/bin/rsync', 'usr/bin/ssh'] as const;

/**
 * Modules loaded by /init, with their dependencies found from the .ko files. The cloud-arm64
 * kernel builds virtio, virtio-mmio (qemu's `-device virtio-*-device` on `-M virt`), virtio-net
 * and virtio-blk as modules; ext4 and AF_PACKET (udhcpc) are built in.
 */
const WANTED_MODULES = ['virtio_mmio', 'virtio_net', 'virtio_blk'] as const;

/** The marker file read from the synced tree and printed on the console. */
export const MARKER_FILE = 'etc/lanha-netboot-marker';

/**
 * /init of the initramfs. Kernel command line: lanha.server=IP (default: the DHCP server id),
 * lanha.user=USER, lanha.disk=/dev/vda (an ext4 disk that keeps the tree between boots, so a
 * second boot moves only what changed; without it a tmpfs), and either lanha.gen=ID (the deploy
 * helper's ssh gate, cluster/deploy: pull `gen/ID/`, fetch the `checklist`, `sha256sum -c` it,
 * `report ID EXIT BYTES ok|bad`, one retry on 75) or lanha.src=PATH (a plain rsync of PATH, no
 * gate). Every line it prints for the test starts with "NETBOOT ". A failure prints
 * "NETBOOT FAIL <what>" and powers off at once.
 */
export const INIT_SCRIPT = `#!/bin/busybox sh
# lanha netboot test initramfs (test/support/netboot-fixtures.ts): DHCP, rsync the tree over ssh
# with a pinned host key, verify and report it, print the marker read from it, power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /sbin /usr/sbin /newroot /root
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /run/netboot
say() { echo "NETBOOT $*"; }
fail() { say "FAIL $*"; sync; poweroff -f; sleep 10; }
uptime_ms() { read up rest < /proc/uptime; echo "\${up%.*}\${up#*.}0"; }
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1="*) echo "\${w#*=}";; esac; done; }
say "init $(uptime_ms)ms"
for m in $(cat /etc/netboot/modules); do insmod "/lib/modules/$m.ko" || fail "insmod $m"; done
ip link set lo up
n=0; while [ ! -e /sys/class/net/eth0 ]; do n=$((n+1)); [ $n -gt 50 ] && fail "no eth0"; sleep 0.1; done
udhcpc -i eth0 -s /etc/netboot/udhcpc.sh -f -q -n -t 6 -T 2 || fail "dhcp"
say "dhcp $(cat /run/netboot/lease) $(uptime_ms)ms"
SERVER=$(arg lanha.server); [ -n "$SERVER" ] || SERVER=$(cat /run/netboot/serverid)
USER=$(arg lanha.user); GEN=$(arg lanha.gen); SRC=$(arg lanha.src); DISK=$(arg lanha.disk)
[ -n "$USER" ] || fail "lanha.user must be on the kernel command line"
if [ -n "$GEN" ]; then SRC="gen/$GEN"; elif [ -z "$SRC" ]; then fail "lanha.gen or lanha.src must be on the kernel command line"; fi
RSYNC_OPTS="-a --numeric-ids --delete --stats"
if [ -n "$DISK" ]; then
  n=0; while [ ! -b "$DISK" ]; do n=$((n+1)); [ $n -gt 50 ] && fail "no $DISK"; sleep 0.1; done
  mount -t ext4 "$DISK" /newroot || fail "mount $DISK"
  RSYNC_OPTS="$RSYNC_OPTS -H -A -X"
else
  mount -t tmpfs -o size=256m tmpfs /newroot || fail "mount tmpfs"
  RSYNC_OPTS="$RSYNC_OPTS -H"
fi
# One ssh connection for the pull, the checklist and the report (a key exchange costs seconds on a
# small board): the first ssh becomes the master, the others are sessions on it.
SSH="ssh -i /etc/netboot/id_ed25519 -o UserKnownHostsFile=/etc/netboot/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 -o ControlMaster=auto -o ControlPath=/run/netboot/ssh.ctl -o ControlPersist=60"
rsync $RSYNC_OPTS -e "$SSH" "$USER@$SERVER:$SRC/" /newroot/ > /run/netboot/rsync.log 2>&1
rc=$?
sed 's/^/NETBOOT rsync: /' /run/netboot/rsync.log
say "SYNC exit=$rc $(uptime_ms)ms"
if [ -n "$GEN" ]; then
  bytes=$(sed -n 's/^Total bytes received: //p' /run/netboot/rsync.log | tr -d ,)
  verdict=bad
  if [ $rc -eq 0 ]; then
    $SSH "$USER@$SERVER" checklist "$GEN" > /run/netboot/sums 2> /run/netboot/checklist.err || say "checklist failed: $(cat /run/netboot/checklist.err)"
    if [ -s /run/netboot/sums ] && (cd /newroot && sha256sum -c -s /run/netboot/sums); then verdict=ok; fi
  fi
  say "VERIFY $verdict $(uptime_ms)ms"
  for try in 1 2; do
    $SSH "$USER@$SERVER" report "$GEN" "$rc" "\${bytes:-0}" "$verdict" > /run/netboot/report.out 2>&1
    r=$?
    [ $r -ne 75 ] && break
    sleep 1
  done
  say "REPORT exit=$r $(tr '\\n' ' ' < /run/netboot/report.out)"
  [ "$verdict" = ok ] || fail "generation $GEN not verified (rsync exit $rc)"
fi
$SSH -O exit "$USER@$SERVER" 2>/dev/null
[ $rc -eq 0 ] || fail "rsync exit $rc"
say "MARKER $(cat /newroot/${MARKER_FILE})"
umount /newroot
sync
poweroff -f
sleep 10
`;

/** busybox udhcpc hook (`-s`): configures the interface and notes the lease for /init. */
export const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}" dev "$interface"
    echo "$serverid" > /run/netboot/serverid
    echo "ip=$ip/\${mask:-24} server=$serverid lease=$lease" > /run/netboot/lease ;;
esac
exit 0
`;

export interface NetbootFixtures {
  /** The cache directory holding this build. */
  dir: string;
  /** The arm64 kernel Image (uncompressed, as Debian ships it: `booti` takes it as is). */
  kernel: string;
  /** gzip newc initramfs, padded to 4 bytes so another archive may follow (netbootInitrd). */
  initrd: string;
  kernelRelease: string;
  /** name=version of every Debian package used. */
  packages: string[];
  /** Modules /init loads, in load order. */
  modules: string[];
}

/** Why the fixtures cannot be built here, or null. */
export function netbootFixturesUnavailable(): string | null {
  if (!isRoot()) return 'building the netboot fixtures needs root (dpkg --add-architecture, apt-get download)';
  const missing = ['apt-get', 'apt-cache', 'dpkg', 'dpkg-deb'].filter((t) => !which(t));
  if (missing.length > 0) return `missing tools for the netboot fixtures: ${missing.join(', ')}`;
  return null;
}

async function sh(command: string, args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout } = await exec(command, [...args], { cwd: options.cwd, timeout: options.timeoutMs ?? 300_000, maxBuffer: 64 << 20 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

const APT_LOCK = ['-o', 'DPkg::Lock::Timeout=300'];

async function aptUpdate(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await sh('apt-get', ['update', '-q', ...APT_LOCK], { timeoutMs: 600_000 });
      return;
    } catch (error) {
      // Another apt may hold the lists lock; it frees it within seconds to minutes.
      if (attempt >= 5) throw error;
      await new Promise((r) => setTimeout(r, 10_000));
    }
  }
}

/** The candidate version of each package, or null when apt knows none. */
async function candidates(packages: readonly string[]): Promise<Map<string, string | null>> {
  const out = await sh('apt-cache', ['policy', ...packages]);
  const result = new Map<string, string | null>();
  let current: string | null = null;
  for (const line of out.split('\n')) {
    const name = /^(\S+):$/.exec(line);
    if (name) { current = name[1]!; continue; }
    const cand = /^\s+Candidate:\s+(\S+)/.exec(line);
    if (cand && current !== null) result.set(current, cand[1] === '(none)' ? null : cand[1]!);
  }
  for (const p of packages) if (!result.has(p)) result.set(p, null);
  return result;
}

/**
 * Direct Depends/Pre-Depends of arm64 packages (first of each alternative, ":arm64" dropped), in
 * one apt-cache call: on a busy 2-core machine each call costs seconds.
 */
async function dependsOf(packages: readonly string[]): Promise<Map<string, string[]>> {
  const out = await sh('apt-cache', ['depends', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...packages.map((p) => `${p}:arm64`)]);
  const result = new Map<string, string[]>();
  let deps: string[] | null = null;
  let alternative = false;
  for (const line of out.split('\n')) {
    const head = /^(\S+?)(:arm64)?$/.exec(line);
    if (head) { deps = []; result.set(head[1]!, deps); alternative = false; continue; }
    // "  Depends: a" or " |Depends: a" (a's alternatives follow on the next lines: take only a).
    const m = /^ ([ |])(?:Pre)?Depends: (\S+)/.exec(line);
    if (m === null || deps === null) continue;
    const name = m[2]!.replace(/:arm64$/, '');
    if (!alternative && !name.startsWith('<')) deps.push(name);
    alternative = m[1] === '|';
  }
  return result;
}

/** apt's arm64 package lists (name, size, mtime): they change exactly when a resolution may. */
function arm64Lists(): string[] {
  const dir = '/var/lib/apt/lists';
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /binary-arm64_Packages/.test(f)).sort().map((f) => {
    const st = statSync(join(dir, f));
    return `${f} ${st.size} ${st.mtimeMs}`;
  });
}

/** Makes apt know arm64 packages: adds the architecture and updates the lists when needed. */
async function ensureArm64Lists(): Promise<void> {
  const foreign = await sh('dpkg', ['--print-foreign-architectures']);
  if (!foreign.split('\n').includes('arm64')) await sh('dpkg', ['--add-architecture', 'arm64']);
  if (arm64Lists().length === 0) await aptUpdate();
}

/** The packages to fetch: the kernel, busybox-static, rsync, ssh and their library closure. */
async function resolvePackages(): Promise<Map<string, string>> {
  const meta = (await dependsOf(['linux-image-cloud-arm64'])).get('linux-image-cloud-arm64') ?? [];
  const kernel = meta.find((d) => d.startsWith('linux-image-'));
  if (kernel === undefined) throw new Error('apt knows no linux-image-*-cloud-arm64 behind linux-image-cloud-arm64:arm64');
  const wanted = new Set<string>([kernel, 'busybox-static', ...PROGRAM_PACKAGES]);
  let level: string[] = [...PROGRAM_PACKAGES];
  for (let depth = 0; level.length > 0; depth++) {
    if (depth > 12 || wanted.size > 80) throw new Error(`the library closure of ${PROGRAM_PACKAGES.join(', ')} does not end: ${[...wanted].join(' ')}`);
    const next: string[] = [];
    for (const deps of (await dependsOf(level)).values()) {
      for (const dep of deps) {
        // Only shared-library packages: the programs need their .so files, nothing else of their deps.
        if (!/^(lib|zlib)/.test(dep) || wanted.has(dep)) continue;
        wanted.add(dep);
        next.push(dep);
      }
    }
    level = next;
  }
  const names = [...wanted].sort().map((p) => `${p}:arm64`);
  const versions = await candidates(names);
  const result = new Map<string, string>();
  for (const n of names) {
    const v = versions.get(n);
    if (v === null || v === undefined) throw new Error(`apt has no candidate for ${n} (is arm64 in dpkg --print-foreign-architectures and apt-get update done?)`);
    result.set(n.replace(/:arm64$/, ''), v);
  }
  return result;
}

/** resolvePackages(), remembered per state of apt's arm64 lists (a resolution costs ~30 s on a busy machine). */
async function resolvePackagesCached(): Promise<Map<string, string>> {
  const stamp = createHash('sha256').update(JSON.stringify({ RESOLVER_VERSION, PROGRAM_PACKAGES, lists: arm64Lists() })).digest('hex').slice(0, 16);
  const file = join(NETBOOT_CACHE, `resolved-${stamp}.json`);
  if (existsSync(file)) return new Map(JSON.parse(readFileSync(file, 'utf8')) as [string, string][]);
  const packages = await resolvePackages();
  for (const f of readdirSync(NETBOOT_CACHE)) if (f.startsWith('resolved-')) rmSync(join(NETBOOT_CACHE, f), { force: true });
  writeFileSync(file, JSON.stringify([...packages]));
  return packages;
}

// ---- lock --------------------------------------------------------------------------------------

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** A lock directory with the holder's PID; a dead holder's lock is taken over. Bounded wait. */
async function withLock<T>(lockDir: string, timeoutMs: number, body: () => Promise<T>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder = NaN;
      try { holder = Number(readFileSync(join(lockDir, 'pid'), 'utf8')); } catch { /* being written */ }
      let ageMs = 0;
      try { ageMs = Date.now() - statSync(lockDir).mtimeMs; } catch { continue; }
      if ((Number.isInteger(holder) && !pidAlive(holder)) || (Number.isNaN(holder) && ageMs > 10_000)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > end) throw new Error(`netboot fixtures: ${lockDir} held by PID ${holder} for more than ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await body();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

// ---- modules -----------------------------------------------------------------------------------

/** The "depends=" field of a .ko's .modinfo section (comma separated, may be empty). */
export function moduleDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const start = at + '\0depends='.length;
  const end = ko.indexOf(0, start);
  const text = ko.subarray(start, end < 0 ? ko.length : end).toString('latin1');
  return text === '' ? [] : text.split(',');
}

/** Every file below `dir` named NAME.ko, by module name ("-" and "_" are the same to the kernel). */
function indexModules(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) found.set(e.name.slice(0, -3).replaceAll('-', '_'), p);
    }
  };
  walk(dir);
  return found;
}

/** `wanted` and what they depend on, dependencies first. */
export function moduleLoadOrder(wanted: readonly string[], dependsOf: (name: string) => string[]): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    state.set(name, 'visiting');
    for (const d of dependsOf(name)) visit(d.replaceAll('-', '_'), [...chain, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const w of wanted) visit(w, []);
  return order;
}

// ---- initramfs ---------------------------------------------------------------------------------

/** Shared libraries (and the loader's symlink) from an extracted package tree. */
function libraryEntries(root: string): CpioEntry[] {
  const entries: CpioEntry[] = [];
  const walk = (rel: string): void => {
    const abs = join(root, rel);
    if (!existsSync(abs)) return;
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        if (!/^(gconv|audit|engines-3|ossl-modules)$/.test(e.name)) walk(r);
        continue;
      }
      if (!/\.so(\.\d+)*$/.test(e.name) && !e.name.startsWith('ld-linux')) continue;
      const st = lstatSync(join(root, r));
      if (st.isSymbolicLink()) entries.push({ kind: 'symlink', path: r, target: readlinkSync(join(root, r)) });
      else if (st.isFile()) entries.push({ kind: 'file', path: r, data: readFileSync(join(root, r)), mode: 0o755 });
    }
  };
  walk('lib');
  walk('usr/lib');
  return entries;
}

/** The entries with every directory (given or implied by a path) first, parents before children. */
export function withDirs(entries: readonly CpioEntry[]): CpioEntry[] {
  const modes = new Map<string, number | undefined>();
  for (const e of entries) if (e.kind === 'dir') modes.set(e.path, e.mode);
  const all = parentDirs([...entries.map((e) => e.path), ...[...modes.keys()].map((d) => `${d}/x`)]);
  const dirs = all.map((d): CpioEntry => {
    const mode = modes.get(d);
    return mode === undefined ? { kind: 'dir', path: d } : { kind: 'dir', path: d, mode };
  });
  return [...dirs, ...entries.filter((e) => e.kind !== 'dir')];
}

function padTo4(bytes: Buffer): Buffer {
  const pad = (4 - (bytes.length % 4)) % 4;
  return pad === 0 ? bytes : Buffer.concat([bytes, Buffer.alloc(pad)]);
}

/**
 * The initramfs for one run: the cached base plus a second gzip'd newc archive holding `files`
 * (keys, known_hosts, a report script). The kernel unpacks concatenated archives in order; the
 * base is padded to 4 bytes, which the kernel's unpacker needs between members.
 */
export function netbootInitrd(fixtures: NetbootFixtures, files: readonly { path: string; data: string | Uint8Array; mode?: number }[]): Buffer {
  const entries = withDirs(files.map((f) => ({ kind: 'file' as const, path: f.path.replace(/^\/+/, ''), data: typeof f.data === 'string' ? Buffer.from(f.data) : f.data, mode: f.mode ?? 0o600 })));
  return Buffer.concat([readFileSync(fixtures.initrd), padTo4(gzipSync(newcArchive(entries)))]);
}

/** Hard-links `from` to `to` (same file system) or copies it; the TFTP root then holds a real file. */
export function placeFile(from: string, to: string): void {
  rmSync(to, { force: true });
  try { linkSync(from, to); } catch { copyFileSync(from, to); }
}

async function build(dir: string, packages: Map<string, string>, log: (line: string) => void): Promise<void> {
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'debs'), { recursive: true });
  try {
    log(`netboot fixtures: downloading ${packages.size} arm64 packages`);
    const download = (): Promise<string> => sh('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', ...[...packages].map(([n, v]) => `${n}:arm64=${v}`)], { cwd: join(work, 'debs'), timeoutMs: 600_000 });
    // Lists older than the archive name files that are gone: update once and try again.
    await download().catch(async (error: unknown) => { log(`netboot fixtures: ${String(error)}; apt-get update and retry`); await aptUpdate(); await download(); });
    const debs = readdirSync(join(work, 'debs')).filter((f) => f.endsWith('.deb'));
    const kernelDeb = debs.find((f) => f.startsWith('linux-image-'));
    if (kernelDeb === undefined) throw new Error('apt-get download fetched no linux-image package');
    for (const deb of debs) await sh('dpkg-deb', ['-x', join(work, 'debs', deb), join(work, deb === kernelDeb ? 'kernel' : 'root')]);

    const bootDir = join(work, 'kernel', 'boot');
    const image = readdirSync(bootDir).find((f) => f.startsWith('vmlinuz-'));
    if (image === undefined) throw new Error(`${kernelDeb} has no boot/vmlinuz-*`);
    const release = image.slice('vmlinuz-'.length);
    const modules = indexModules(join(work, 'kernel', 'lib', 'modules', release));
    const koOf = (name: string): string => {
      const p = modules.get(name);
      if (p === undefined) throw new Error(`module ${name} not in ${kernelDeb}`);
      return p;
    };
    const order = moduleLoadOrder(WANTED_MODULES, (name) => moduleDepends(readFileSync(koOf(name))));

    const root = join(work, 'root');
    const entries: CpioEntry[] = [
      { kind: 'dir', path: 'dev' },
      { kind: 'char', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'char', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
      ...['proc', 'sys', 'run', 'tmp', 'root', 'newroot', 'sbin', 'usr/sbin'].map((p): CpioEntry => ({ kind: 'dir', path: p })),
      { kind: 'file', path: 'init', data: Buffer.from(INIT_SCRIPT), mode: 0o755 },
      { kind: 'file', path: 'bin/busybox', data: readFileSync(join(root, 'bin', 'busybox')), mode: 0o755 },
      { kind: 'file', path: 'etc/netboot/udhcpc.sh', data: Buffer.from(UDHCPC_SCRIPT), mode: 0o755 },
      { kind: 'file', path: 'etc/netboot/modules', data: Buffer.from(`${order.join('\n')}\n`) },
      { kind: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') },
      { kind: 'file', path: 'etc/group', data: Buffer.from('root:x:0:\n') },
      { kind: 'file', path: 'etc/nsswitch.conf', data: Buffer.from('passwd: files\ngroup: files\nhosts: files\n') },
      ...PROGRAMS.map((p): CpioEntry => ({ kind: 'file', path: p, data: readFileSync(join(root, p)), mode: 0o755 })),
      ...libraryEntries(root),
      ...order.map((m): CpioEntry => ({ kind: 'file', path: `lib/modules/${m}.ko`, data: readFileSync(koOf(m)) })),
    ];
    const initrd = padTo4(gzipSync(newcArchive(withDirs(entries)), { level: 6 }));
    const out = join(work, 'out');
    mkdirSync(out);
    copyFileSync(join(bootDir, image), join(out, 'Image'));
    writeFileSync(join(out, 'initrd.img'), initrd);
    const manifest = { kernelRelease: release, packages: [...packages].map(([n, v]) => `${n}=${v}`), modules: order };
    writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(out, dir);
    // Builds from older inputs (a previous kernel, a changed script) go after an hour unused.
    for (const other of readdirSync(NETBOOT_CACHE)) {
      const p = join(NETBOOT_CACHE, other);
      if (/^[0-9a-f]{16}$/.test(other) && p !== dir && Date.now() - statSync(p).mtimeMs > 3_600_000) rmSync(p, { recursive: true, force: true });
    }
    log(`netboot fixtures: built ${dir} (kernel ${release}, initrd ${(initrd.length / 1048576).toFixed(1)} MiB, modules ${order.join(' ')})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The netboot fixtures, built on first use (needs root: apt-get, dpkg-deb) and cached under
 * NETBOOT_CACHE/<digest of the inputs>. Later calls with the same Debian versions return at once.
 */
export async function netbootFixtures(log: (line: string) => void = () => undefined): Promise<NetbootFixtures> {
  const reason = netbootFixturesUnavailable();
  if (reason !== null) throw new Error(reason);
  mkdirSync(NETBOOT_CACHE, { recursive: true });
  return withLock(join(NETBOOT_CACHE, '.lock'), 900_000, async () => {
    await ensureArm64Lists();
    const packages = await resolvePackagesCached();
    const key = createHash('sha256').update(JSON.stringify({ BUILDER_VERSION, packages: [...packages], INIT_SCRIPT, UDHCPC_SCRIPT, WANTED_MODULES, PROGRAMS })).digest('hex').slice(0, 16);
    const dir = join(NETBOOT_CACHE, key);
    if (!existsSync(join(dir, 'manifest.json'))) await build(dir, packages, log);
    else { const now = new Date(); utimesSync(dir, now, now); } // in use: not swept with older builds
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { kernelRelease: string; packages: string[]; modules: string[] };
    return { dir, kernel: join(dir, 'Image'), initrd: join(dir, 'initrd.img'), ...manifest };
  });
}
