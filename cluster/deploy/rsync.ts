import { createHash } from 'node:crypto';

// Pure helpers around the system rsync and ssh: the argument lists deploy runs, the pinned
// known_hosts file, the `--info=progress2` parser, rsync's exit codes in words, and OpenSSH's
// SHA256 fingerprint. No processes here (jobs.ts runs them).

/** rsync exit codes (rsync(1) "EXIT VALUES") as an operator-facing sentence. */
export function rsyncExitWords(code: number): string {
  switch (code) {
    case 0: return 'success';
    case 1: return 'syntax or usage error (a bad option: check the rsync versions on both ends)';
    case 2: return 'protocol incompatibility (rsync versions too far apart)';
    case 3: return 'cannot select the input/output files or directories (does the destination directory exist?)';
    case 5: return 'could not start the rsync protocol (the remote rsync is missing or printed something first)';
    case 10: return 'socket I/O error: the connection broke (the node, its sshd or the network went away)';
    case 11: return 'file I/O error (often the destination disk is full or read-only)';
    case 12: return 'the data stream broke off: the connection or the remote rsync died mid-transfer (ssh dropped, sshd killed, disk full on the node)';
    case 13: return 'error in program diagnostics';
    case 14: return 'error in IPC code';
    case 20: return 'stopped by a signal (SIGINT/SIGTERM/SIGUSR1)';
    case 21: return 'waitpid() failed';
    case 22: return 'could not allocate memory';
    case 23: return 'partial transfer: some files could not be transferred (permissions, disk full, path too long); the rest was, see the errors above';
    case 24: return 'partial transfer: some source files vanished while being sent (the tree changed during the sync)';
    case 25: return 'the --max-delete limit stopped deletions';
    case 30: return 'timeout: no data sent or received for too long (the node or the network stalled)';
    case 35: return 'timeout waiting for the daemon connection';
    // rsync's RERR_CMD_NOTFOUND is the remote shell's 127; a local rsync that cannot start is told apart by describeFailure.
    case 127: return 'command not found: rsync is not installed on the node (or not in the PATH of its login shell)';
    case 255: return 'ssh failed: node unreachable, login refused, or its host key does not match the pinned one';
    default: return `rsync exited with ${code}`;
  }
}

export interface Progress2 {
  /** Bytes transferred so far (of the files rsync sends; unchanged files count as done). */
  bytes: number;
  percent: number;
  /** "12.34MB/s" as rsync prints it. */
  rate: string;
  /** "0:00:03" as rsync prints it. */
  eta: string;
  /** Files still to check / total, when rsync prints them. */
  toCheck?: number;
  total?: number;
}

/**
 * One `--info=progress2` line, e.g. "  1,234,567  45%   12.34MB/s    0:00:03 (xfr#12, to-chk=100/3000)".
 * rsync separates updates with CR and ends a file with LF; feed it the text between separators.
 */
export function parseProgress2(line: string): Progress2 | null {
  const m = /^\s*([\d,.]+)\s+(\d+)%\s+(\S+\/s)\s+(\d+:\d\d:\d\d)(?:\s+\((?:xfr#\d+,\s*)?(?:to-chk|ir-chk)=(\d+)\/(\d+)\))?\s*$/.exec(line);
  if (!m) return null;
  const p: Progress2 = { bytes: Number(m[1]!.replace(/[,.]/g, '')), percent: Number(m[2]), rate: m[3]!, eta: m[4]! };
  if (m[5] !== undefined) { p.toCheck = Number(m[5]); p.total = Number(m[6]); }
  return p;
}

/** Splits a chunk of rsync output on CR and LF, keeping the unfinished tail for the next chunk. */
export function splitProgress(buffered: string, chunk: string): { lines: string[]; rest: string } {
  const parts = (buffered + chunk).split(/[\r\n]/);
  const rest = parts.pop() ?? '';
  return { lines: parts.filter((p) => p.trim() !== ''), rest };
}

/**
 * What is kept of a child's output: its first and its last `max` characters. rsync's --stats and its
 * closing error line come last, after one progress line per file (over 1 MiB for 20,000 files), so
 * keeping only the start lost them: the node's result said 0 bytes sent, or quoted a line from the middle.
 */
export class BoundedOutput {
  #head = '';
  #tail = '';
  #dropped = 0;

  constructor(readonly max: number) {}

  push(chunk: string): void {
    let rest = chunk;
    if (this.#head.length < this.max) {
      const take = rest.slice(0, this.max - this.#head.length);
      this.#head += take;
      rest = rest.slice(take.length);
    }
    if (rest === '') return;
    const tail = this.#tail + rest;
    this.#dropped += Math.max(0, tail.length - this.max);
    this.#tail = tail.length > this.max ? tail.slice(-this.max) : tail;
  }

  text(): string {
    return this.#dropped === 0 ? this.#head + this.#tail : `${this.#head}\n[${this.#dropped} characters left out]\n${this.#tail}`;
  }
}

export interface RsyncStats {
  /** "Total bytes sent" (over the wire, after compression). */
  sent?: number;
  received?: number;
  /** "Total transferred file size". */
  transferred?: number;
  /** "Number of regular files transferred". */
  files?: number;
}

/** The figures of `--stats` output. */
export function parseStats(text: string): RsyncStats {
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(text);
    return m ? Number(m[1]!.replace(/[,.]/g, '')) : undefined;
  };
  const s: RsyncStats = {};
  const sent = num(/Total bytes sent:\s*([\d,.]+)/);
  const received = num(/Total bytes received:\s*([\d,.]+)/);
  const transferred = num(/Total transferred file size:\s*([\d,.]+)/);
  const files = num(/Number of regular files transferred:\s*([\d,.]+)/);
  if (sent !== undefined) s.sent = sent;
  if (received !== undefined) s.received = received;
  if (transferred !== undefined) s.transferred = transferred;
  if (files !== undefined) s.files = files;
  return s;
}

/** OpenSSH host key "type base64 [comment]" -> { type, blob }, or null when it is not one. */
export function parseHostKey(text: string): { type: string; base64: string; blob: Buffer } | null {
  const m = /^\s*((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+)\s+([A-Za-z0-9+/]+={0,2})(?:\s.*)?$/.exec(text);
  if (!m) return null;
  const blob = Buffer.from(m[2]!, 'base64');
  // The blob starts with the key type as an SSH string; a key whose blob disagrees is not a key.
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  if (len + 4 > blob.length || blob.subarray(4, 4 + len).toString('latin1') !== m[1]) return null;
  return { type: m[1]!, base64: m[2]!, blob };
}

/** "SHA256:..." exactly as `ssh-keygen -lf` prints it: unpadded base64 of sha256(key blob). */
export function fingerprint(blob: Uint8Array): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** The alias a node's pinned key is filed under in the generated known_hosts file. */
export function hostKeyAlias(node: string): string {
  return `lanha-node-${node}`;
}

/**
 * known_hosts text with the full pinned key of each node under its alias (ssh is run with
 * -o HostKeyAlias=<alias>, so an address change does not unpin and two nodes never share an entry).
 */
export function knownHostsFile(keys: ReadonlyArray<{ node: string; hostKey: string }>): string {
  return keys.map(({ node, hostKey }) => {
    const key = parseHostKey(hostKey);
    if (!key) throw new Error(`the pinned host key of ${node} is not an OpenSSH public key`);
    return `${hostKeyAlias(node)} ${key.type} ${key.base64}\n`;
  }).join('');
}

export interface SshTarget {
  node: string;
  host: string;
  port: number;
  user: string;
}

export interface SshOptions {
  knownHostsFile: string;
  identityFile?: string;
  connectTimeoutS?: number;
  /**
   * The control socket of the node's ssh master (see masterArgs): this ssh runs its session over
   * the master's connection when the socket is there (no key exchange, no login), else connects
   * as usual (ControlMaster=no never makes a master itself).
   */
  controlPath?: string;
}

/**
 * ssh keepalives on every deploy connection (ServerAliveInterval, ServerAliveCountMax): a node from
 * which nothing at all arrived for (countMax + 1) intervals, 20 s, is taken as gone and the connection
 * closed, whether data was waiting to go out or not. The push path (ssh2) applies the same rule.
 */
export const SSH_KEEPALIVE = { intervalS: 5, countMax: 3 } as const;

/** How long a deploy connection may receive nothing before ssh ends it. */
export const SSH_SILENT_S = SSH_KEEPALIVE.intervalS * (SSH_KEEPALIVE.countMax + 1);

/** "20 s", "0.8 s": a duration for a message. */
export function secondsText(ms: number): string {
  return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))} s`;
}

/** OpenSSH's words when its keepalives went unanswered (ServerAliveCountMax reached). */
export function sshWentSilent(stderr: string): boolean {
  return /Timeout, server \S+ not responding/.test(stderr);
}

/** The fingerprint ssh printed for the key the remote host sent (a changed host key), if it did. */
export function offeredFingerprint(stderr: string): string | undefined {
  return /key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/]+)/.exec(stderr)?.[1];
}

/**
 * The node's result in words: the exit code explained; a host key mismatch, a full disk and a silent
 * node named. `node` (and its pinned key) make a host key mismatch name the command that re-pins it.
 */
export function describeFailure(code: number, stderr: string, node?: { node: string; hostKey?: string; user?: string }): string {
  const tail = stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(-2).join(' | ');
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i.test(stderr)) {
    const offered = offeredFingerprint(stderr);
    const pinned = node?.hostKey === undefined ? null : parseHostKey(node.hostKey);
    const keys = `${offered === undefined ? '' : `: it offered ${offered}`}${pinned === null ? '' : `${offered === undefined ? ':' : ','} the pinned key is ${fingerprint(pinned.blob)}`}`;
    return `host key mismatch${node === undefined ? '' : ` on ${node.node}`}${keys}; nothing was sent (rsync exit ${code}). If the node was reinstalled, check it and run \`lanctl nodes trust ${node?.node ?? 'NAME'} --replace\``;
  }
  if (sshWentSilent(stderr)) {
    return `the connection went silent for ${SSH_SILENT_S} s: nothing came back from the node, not even an answer to the ssh keepalives sent every ${SSH_KEEPALIVE.intervalS} s (the node, its sshd or the network stopped), and ssh closed it (rsync exit ${code}); lanctl deploy resume syncs the node again`;
  }
  const on = node === undefined ? 'the node' : node.node;
  if (/^cannot run rsync/m.test(stderr)) return `rsync cannot run on this LAN member (${tail}): install it here (apt-get install rsync openssh-client)`;
  // 127 when rsync reaped ssh in time, else 12 ("connection unexpectedly closed"); the shell's own line tells.
  if (/remote command not found|\brsync: (command )?not found/.test(stderr)) {
    return `rsync is not installed on ${on} (the login worked, then its shell found no rsync; rsync exit ${code}): install it there (apt-get install rsync), then \`lanctl deploy resume\``;
  }
  if (/Permission denied \(publickey/.test(stderr)) {
    return `${on} refused the deploy key (Permission denied (publickey); rsync exit ${code}): add the public half of deploy.identityFile to ${node?.user ?? 'the deploy user'}'s authorized_keys on ${on}; nothing was sent`;
  }
  if (/No space left on device/i.test(stderr)) {
    return `the disk under the destination on ${on} is full (No space left on device; rsync exit ${code}). The sync needs room for the changed files next to the old ones until it ends; free space there, then \`lanctl deploy resume\``;
  }
  if (/Read-only file system/.test(stderr)) {
    return `the file system of the destination on ${on} is read-only (Read-only file system; rsync exit ${code}): nothing could be written there; remount it read-write (or check why the kernel made it read-only), then \`lanctl deploy resume\` — ${tail.slice(0, 300)}`;
  }
  // The session died under a transfer that had started (the login and the host key were fine):
  // rsync's 255 would otherwise say "ssh failed: unreachable, login refused, or host key".
  if (/Broken pipe|Connection reset by peer/.test(stderr) && (code === 255 || code === 12 || code === 10)) {
    return `the ssh connection to ${on} was lost mid-transfer (${/Connection reset by peer/.test(stderr) ? 'Connection reset by peer' : 'Broken pipe'}; rsync exit ${code}): the node's sshd session ended (sshd restarted or killed, the node rebooting, the network reset). \`lanctl deploy resume\` syncs it again`;
  }
  const missed = PARTIAL_EXITS.has(code) ? untransferredPaths(stderr) : [];
  if (missed.length > 0) {
    return `rsync could not transfer ${missed.length === 1 ? '1 path' : `${missed.length} paths`} to ${on} (rsync exit ${code}, ${code === 24 ? 'source files vanished: the store\'s copy changed during the sync' : 'partial transfer'}): ${untransferredText(missed)}`;
  }
  return `rsync exit ${code}: ${rsyncExitWords(code)}${tail === '' ? '' : ` — ${tail.slice(0, 300)}`}`;
}

/**
 * rsync exits after which the receiver has put in place what did arrive: with --delay-updates the
 * files waiting in `.~tmp~` are renamed over the old ones at the end of the pass, and (for 23 from
 * the receiver side) the deletions ran, even when some files failed. The node's tree is then a mix
 * of two generations. 23: some files could not be read, written or renamed; 24: source files
 * vanished while being sent (rsync users often take 24 as harmless, but here it means the store's
 * copy changed under the sync: the node does not hold the generation either). A cut-off sync (12,
 * 30, 255, a signal) never reaches that point and leaves the old tree whole.
 */
export const PARTIAL_EXITS: ReadonlySet<number> = new Set([23, 24]);

/** A path rsync names in an error line, and what happened to it. */
export interface Untransferred { path: string; why: string }

/**
 * The paths rsync's own error lines name ("rsync: [receiver] rename failed for "/srv/root/a/f2" (from
 * a/.~tmp~/f2): Device or resource busy (16)", "rsync: [sender] send_files failed to open "...":
 * Permission denied (13)", "file has vanished: "..."", "cannot delete non-empty directory: x"),
 * in the order printed, each path once. A holding name (`.~tmp~/.f2.Ab12Cd`) is shown as the file it stands for.
 */
export function untransferredPaths(stderr: string): Untransferred[] {
  const out = new Map<string, string>();
  const add = (path: string, why: string): void => {
    const shown = path.replace(/\/\.~tmp~\/\.?([^/]+?)(\.[A-Za-z0-9]{6})?$/, '/$1');
    if (!out.has(shown)) out.set(shown, why.trim());
  };
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    let m = /^file has vanished: "(.+)"$/.exec(line);
    if (m) { add(m[1]!, 'vanished while being sent'); continue; }
    m = /^cannot delete non-empty directory: (.+)$/.exec(line);
    if (m) { add(m[1]!, 'cannot delete non-empty directory'); continue; }
    m = /^rsync: (?:\[\w+\] )?(.*?)"(.+)"(?: \(from [^)]*\))?( [a-z][a-z ]*)?: (.+)$/.exec(line);
    if (m) { add(m[2]!, `${`${m[1]!.trim().replace(/\s+(for|on|of|in)$/, '')}${m[3] ?? ''}`.trim()}: ${m[4]!}`.replace(/^: /, '')); continue; }
    m = /^rsync: (?:\[\w+\] )?(?:delete_file: )?(unlink|rmdir)\((.+)\) failed: (.+)$/.exec(line);
    if (m) add(m[2]!, `${m[1]!} failed: ${m[3]!}`);
  }
  return [...out].map(([path, why]) => ({ path, why }));
}

/** "/srv/root/a/f2 (rename failed: Device or resource busy (16)), ... and 3 more". */
export function untransferredText(list: readonly Untransferred[], max = 8): string {
  const shown = list.slice(0, max).map((u) => `${u.path} (${u.why})`).join(', ');
  return list.length > max ? `${shown} and ${list.length - max} more (the daemon's log has rsync's whole output)` : shown;
}

/** How long the daemon keeps an idle ssh master to a node up for the next job. */
export const CONTROL_IDLE_MS = 60_000;

/** The ssh argv (without the remote command): pinned key only, no prompts, no agent or config surprises. */
export function sshArgs(target: SshTarget, options: SshOptions): string[] {
  const args = [
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${options.knownHostsFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', `HostKeyAlias=${hostKeyAlias(target.node)}`,
    '-o', 'CheckHostIP=no',
    '-o', 'UpdateHostKeys=no',
    '-o', `ConnectTimeout=${options.connectTimeoutS ?? 10}`,
    '-o', `ServerAliveInterval=${SSH_KEEPALIVE.intervalS}`,
    '-o', `ServerAliveCountMax=${SSH_KEEPALIVE.countMax}`,
    '-p', String(target.port),
    '-l', target.user,
  ];
  if (options.identityFile !== undefined) args.push('-i', options.identityFile, '-o', 'IdentitiesOnly=yes');
  if (options.controlPath !== undefined) args.push('-o', 'ControlMaster=no', '-o', `ControlPath=${options.controlPath}`);
  return args;
}

/**
 * The argv of a node's ssh master: a child of the daemon (ControlPersist=no: it never forks away,
 * so stopping or killing the daemon ends it), no command (-N), listening on `controlPath` once it
 * has logged in with the pinned key. The daemon closes it after CONTROL_IDLE_MS without a job.
 */
export function masterArgs(target: SshTarget, options: SshOptions, controlPath: string): string[] {
  const { controlPath: _unused, ...direct } = options;
  return [...sshArgs(target, direct), '-o', 'ControlMaster=yes', '-o', `ControlPath=${controlPath}`, '-o', 'ControlPersist=no', '-N', target.host];
}

/** Longest control socket path: sun_path holds 108 bytes and ssh adds a 17-character suffix while it binds. */
export const CONTROL_PATH_MAX = 90;

/**
 * The control socket of a node's ssh master under `dir`, or undefined when that path would be too
 * long for a unix socket (then every job logs in afresh). Named by a digest of everything that
 * decides whom the connection reaches and trusts: node, address, port, user, identity, pinned key.
 */
export function controlPathFor(dir: string, target: SshTarget, hostKey: string, identityFile: string | undefined): string | undefined {
  const digest = createHash('sha256').update([target.node, target.host, String(target.port), target.user, identityFile ?? '', hostKey].join('\0')).digest('hex').slice(0, 20);
  const path = `${dir.replace(/\/+$/, '')}/${digest}`;
  return path.length <= CONTROL_PATH_MAX ? path : undefined;
}

/**
 * Quotes one word of rsync's -e command. rsync splits that string on spaces and honours single and
 * double quotes but not backslashes (rsync(1) --rsh), so a word holding both quote kinds cannot pass.
 */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  if (!word.includes("'")) return `'${word}'`;
  if (!word.includes('"')) return `"${word}"`;
  throw new Error(`cannot pass ${word} to rsync -e: it holds both quote characters`);
}

export interface RootfsRsyncOptions {
  source: string;
  /**
   * The node's live tree when `destination` is its staging directory (stagingPlan): unchanged files
   * are hard-linked from it (`--link-dest`), and the pass writes no holding directories of its own.
   */
  linkDest?: string;
  /** The node's overlay tree, sent in the same pass (see rootfsRsyncArgs). */
  overlay?: string;
  target: SshTarget;
  destination: string;
  ssh: SshOptions;
  exclude?: readonly string[];
  dryRun?: boolean;
  /** The generation store keeps owners and devices in xattrs: this (sending) side reads them with --fake-super and the node gets the real ones. */
  fakeSuper?: boolean;
}

/**
 * The argv of the rootfs pass: `-aHAX --numeric-ids --delete --info=progress2 --no-inc-recursive`,
 * the overlay directory first, then the generation. rsync merges several sources into one file
 * list and keeps the first of two equal names, so the node's own hostname, machine-id, hosts and
 * host keys win over the generation's, and --delete, which spares everything in the list, never
 * removes them: one ssh connection per node, and a rerun with no change rewrites nothing.
 * `--sparse`: runs of zeros are written as holes, so a sparse file (a disk image, a swap file) does
 * not take its whole size on the node's disk (a 256 MiB file with nothing in it took 256 MiB).
 * With `linkDest` the pass goes into a staging directory (stagingPlan) that becomes the node's
 * tree by a rename once it arrived whole; without (a destination that cannot be renamed),
 * `--delay-updates --delete-delay`: each changed file waits in its directory's `.~tmp~` and every
 * deletion waits until all files arrived, then all are put in place at once; a sync cut off
 * (connection lost, disk full, cancelled) leaves the node's previous generation whole, which is
 * what it then boots, and a rerun starts from the files kept aside.
 */
export function rootfsRsyncArgs(o: RootfsRsyncOptions): string[] {
  // Into a staging directory nothing is live: the holding directories would only add a rename per file.
  const held = o.linkDest === undefined ? ['--delay-updates', '--delete-delay'] : [`--link-dest=${o.linkDest.replace(/\/+$/, '')}`];
  const args = ['-aHAX', '--sparse', '--numeric-ids', '--delete', ...held, '--info=progress2', '--no-inc-recursive', '--stats', '--timeout=60',
    '-e', ['ssh', ...sshArgs(o.target, o.ssh)].map(shellQuote).join(' ')];
  for (const p of o.exclude ?? []) args.push(`--filter=- ${p}`);
  if (o.dryRun) args.push('--dry-run');
  if (o.fakeSuper) args.push('--fake-super');
  if (o.overlay !== undefined) args.push(`${o.overlay.replace(/\/+$/, '')}/`);
  args.push(`${o.source.replace(/\/+$/, '')}/`, `${rsyncHost(o.target.host)}:${o.destination.replace(/\/+$/, '')}/`);
  return args;
}

function rsyncHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Where a node's tree is staged so that it changes all at once. `beside`: the destination is renamed
 * as a whole, the sync goes to `<parent>/.<name>.lanha-new-<gen12>` on its file system and the tree
 * it replaces waits in `<parent>/.<name>.lanha-old` until it is removed. `inside`: the destination is
 * a mount point (a node's root partition mounted at /mnt/root), which cannot be renamed, so the sync
 * goes to `<dest>/.lanha/new-<gen12>` inside it and the switch moves the tree's top-level entries
 * (the old ones to `<dest>/.lanha/old`, the new ones in), after writing their list to
 * `<dest>/.lanha/switch`: a switch cut off there is finished by the next deploy (SWITCH_INSIDE_SCRIPT).
 * The top of the partition keeps being the tree the kernel's root= mounts, so nothing on the boot path
 * changes. The node's PREPARE_SCRIPT says which one applies.
 */
export interface StagingPlan {
  dest: string;
  layout: 'beside' | 'inside';
  staging: string;
  /** What every staging directory of this destination starts with (those of other generations are removed). */
  prefix: string;
  old: string;
}

/** The two ways to stage `destination` (beside: undefined for `/`, which has nothing beside it); undefined for a relative path. */
export function stagingPlans(destination: string, generation: string): { beside: StagingPlan | undefined; inside: StagingPlan } | undefined {
  const dest = destination.replace(/\/+$/, '');
  if (!destination.startsWith('/')) return undefined;
  const cut = dest.lastIndexOf('/');
  const name = dest.slice(cut + 1);
  if (name === '.' || name === '..' || dest.split('/').includes('..')) return undefined;
  const gen12 = generation.slice(0, 12);
  const lanha = `${dest}/.lanha`;
  const inside: StagingPlan = { dest: dest === '' ? '/' : dest, layout: 'inside', staging: `${lanha}/new-${gen12}`, prefix: `${lanha}/new-`, old: `${lanha}/old` };
  if (dest === '') return { beside: undefined, inside };
  const prefix = `${dest.slice(0, cut)}/.${name}.lanha-new-`;
  return { beside: { dest, layout: 'beside', staging: `${prefix}${gen12}`, prefix, old: `${dest.slice(0, cut)}/.${name}.lanha-old` }, inside };
}

/** The plan a destination is staged beside itself with (undefined for `/` and relative paths). */
export function stagingPlan(destination: string, generation: string): StagingPlan | undefined {
  return stagingPlans(destination, generation)?.beside;
}

/** One word for a POSIX shell (the node's login shell parses the command ssh sends). */
export function posixQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

// The node-side scripts use only what a BusyBox userland has too (ash, mv, rm, mkdir, stat, sync,
// grep): no `mv -T` (BusyBox builds without it exist), so every rename goes to a name checked absent
// first, which a plain `mv` renames to (rename(2)); `mountpoint` is tried, `stat -c %d` decides
// without it. Names are read from directory globs, never from `ls` output; a path is printed with
// printf, never echo (dash and BusyBox echo read `\0NNN` and `\c` in it as escapes).

/** sh functions both node scripts share: the top-level entries of a directory, and the inside switch's moves. */
const NODE_FUNCTIONS = [
  // entries DIR: the names in DIR, one a line (dot files too).
  'entries() { for y in "$1"/.[!.]* "$1"/..?* "$1"/*; do if [ -e "$y" ] || [ -L "$y" ]; then printf "%s\\n" "${y##*/}"; fi; done; }',
  // finish DEST OLD MARKER: completes an inside switch from its marker (line 1: the staging
  // directory's name under DEST/.lanha, then the new tree's top-level names). Each new entry still
  // staged moves in (the old one of that name out first); then every other top-level entry but
  // .lanha moves out. Run again after a cut at any point, it does what is left.
  'finish() {',
  '  { IFS= read -r base; while IFS= read -r x; do',
  '    if [ -e "$1/.lanha/$base/$x" ] || [ -L "$1/.lanha/$base/$x" ]; then',
  '      if [ -e "$1/$x" ] || [ -L "$1/$x" ]; then mv "$1/$x" "$2/$x" || return 1; fi',
  '      mv "$1/.lanha/$base/$x" "$1/$x" || return 1',
  '    fi',
  '  done; } < "$3"',
  '  entries "$1" | while IFS= read -r x; do',
  '    if [ "$x" != .lanha ] && ! tail -n +2 "$3" | grep -qxF -- "$x"; then mv "$1/$x" "$2/$x" || exit 1; fi',
  '  done || return 1',
  '  rm -f "$3"',
  '}',
];

/**
 * Run on the node before the sync (`sh -c SCRIPT lanha-deploy DEST STAGING OLD PREFIX ISTAGING IOLD
 * IPREFIX MDEST [FILTER...]`, the beside plan's paths, empty for `/`, then the inside plan's, then
 * DEST as the mount table writes it, `mountTablePath`): finishes a
 * switch cut off (inside: from its marker; beside: DEST missing and OLD whole, OLD goes back),
 * removes old trees and the staging directories of other generations, and says on its last line how
 * the tree can change: `lanha-mode staging` (beside), `lanha-mode inside` (DEST is a mount point),
 * or `lanha-mode in-place WHY` (a symlink, not a directory), or `lanha-mode below MOUNT` (a file
 * system mounted below DEST, whose files a switch would carry into the old tree and remove; MOUNT as
 * /proc/mounts writes it). /proc/mounts writes a space, tab, newline and backslash in a path as
 * `\040`, `\011`, `\012`, `\134`, so the mount points below DEST are matched against MDEST, DEST
 * written the same way: matched against DEST itself, a mount below `/srv/my root` went unseen. With exclude rules (FILTER: rsync
 * --filter words) the paths they match are carried from DEST into the staging directory first, as
 * hard links: the sync leaves excluded paths alone, so the new tree must hold them as the old one did.
 */
export const PREPARE_SCRIPT = [
  'd=$1; s=$2; o=$3; p=$4; S=$5; O=$6; P=$7; e=${8:-$1}; shift 8',
  ...NODE_FUNCTIONS,
  'M="${O%/*}/switch"',
  'if [ -f "$M" ]; then mkdir -p "$O" && finish "${d%/}" "$O" "$M" || exit 41; fi',
  'if [ -n "$s" ] && [ ! -e "$d" ] && [ ! -L "$d" ] && [ -d "$o" ]; then mv "$o" "$d" || exit 41; fi',
  'for x in "$o" "$O" "$M.new"; do if [ -n "$x" ] && { [ -e "$x" ] || [ -L "$x" ]; }; then rm -rf "$x" || exit 42; fi; done',
  'for x in ${p:+"$p"*} "$P"*; do if [ "$x" != "$s" ] && [ "$x" != "$S" ] && { [ -e "$x" ] || [ -L "$x" ]; }; then rm -rf "$x" || exit 43; fi; done',
  'if [ -L "$d" ]; then printf "%s\\n" "lanha-mode in-place $d is a symlink"; exit 0; fi',
  'if [ -e "$d" ] && [ ! -d "$d" ]; then printf "%s\\n" "lanha-mode in-place $d is not a directory"; exit 0; fi',
  'below=$(while read -r _ m _; do case "$m" in "${e%/}"/?*) printf "%s\\n" "$m";; esac; done < /proc/mounts 2>/dev/null | head -n 1)',
  'if [ -n "$below" ]; then printf "lanha-mode below %s\\n" "$below"; exit 0; fi',
  'if [ -d "$d" ] && { [ -z "$s" ] || mountpoint -q "$d" 2>/dev/null || [ "$(stat -c %d "$d")" != "$(stat -c %d "$d/..")" ]; }; then',
  '  mkdir -p "${S%/*}" || exit 44',
  '  if [ $# -gt 0 ]; then rsync -aHAX --numeric-ids --link-dest="${d%/}" --exclude=/.lanha --include="*/" "$@" --exclude="*" "${d%/}/" "$S/" || exit 45; fi',
  '  echo "lanha-mode inside"; exit 0',
  'fi',
  'if [ -z "$s" ]; then printf "%s\\n" "lanha-mode in-place $d has no directory beside it"; exit 0; fi',
  'mkdir -p "${d%/*}/" || exit 44',
  'if [ $# -gt 0 ] && [ -d "$d" ]; then rsync -aHAX --numeric-ids --link-dest="$d" --include="*/" "$@" --exclude="*" "$d/" "$s/" || exit 45; fi',
  'echo "lanha-mode staging"',
].join('\n');

/**
 * Run on the node once the staging directory holds the whole generation (`sh -c SCRIPT
 * lanha-deploy DEST STAGING OLD`, beside): flushes it to disk, then makes it DEST in one step where the
 * node can (renameat2 RENAME_EXCHANGE: `mv --exchange`, coreutils 9.5, or util-linux `exch`), else
 * in two renames (DEST to OLD, STAGING to DEST; a crash between them leaves OLD whole, which the
 * next deploy's PREPARE_SCRIPT puts back), then removes the old tree.
 */
export const SWITCH_SCRIPT = [
  'd=$1; s=$2; o=$3',
  '[ -d "$s" ] || { printf "%s\\n" "the staging directory $s is missing" >&2; exit 46; }',
  'sync -f "$s" 2>/dev/null || sync',
  'if [ -e "$o" ] || [ -L "$o" ]; then rm -rf "$o" || exit 48; fi',
  'if [ ! -e "$d" ] && [ ! -L "$d" ]; then mv "$s" "$d" || exit 47',
  'elif mv --exchange -T "$s" "$d" 2>/dev/null || exch "$s" "$d" 2>/dev/null; then mv "$s" "$o" || exit 48',
  'else mv "$d" "$o" || exit 49; mv "$s" "$d" || { mv "$o" "$d"; exit 50; }; fi',
  'sync -f "$d" 2>/dev/null || sync',
  'rm -rf "$o" || printf "%s\\n" "the old tree $o could not be removed (the next deploy removes it)" >&2',
  'exit 0',
].join('\n');

/**
 * The inside switch (`sh -c SCRIPT lanha-deploy DEST STAGING OLD`, DEST a mount point, STAGING and
 * OLD under DEST/.lanha): flushes the staged tree, writes the marker (the staging directory's name
 * and the new tree's top-level names, flushed before anything moves), moves each top-level entry
 * (`finish`: the old one to OLD, the new one in; then the old-only ones out), flushes, drops the
 * marker and removes the old tree. A cut anywhere in the moves leaves the marker, and the next
 * deploy's PREPARE_SCRIPT completes the switch before anything else: the staged tree had arrived
 * whole and been checked before the marker was written.
 */
export const SWITCH_INSIDE_SCRIPT = [
  'd=${1%/}; s=$2; o=$3',
  ...NODE_FUNCTIONS,
  'M="${o%/*}/switch"',
  '[ -d "$s" ] || { printf "%s\\n" "the staging directory $s is missing" >&2; exit 46; }',
  'nl="\n"',
  'for y in "$s"/.[!.]* "$s"/..?* "$s"/*; do case "${y##*/}" in .lanha|*"$nl"*) printf "%s\\n" "the generation has a top-level entry named .lanha or with a newline in its name: it cannot be switched inside $d" >&2; exit 53;; esac; done',
  'if [ -e "$o" ] || [ -L "$o" ]; then rm -rf "$o" || exit 48; fi',
  'mkdir "$o" || exit 48',
  'sync -f "$s" 2>/dev/null || sync',
  '{ printf "%s\\n" "${s##*/}" && entries "$s"; } > "$M.new" || exit 51',
  'sync -f "$M.new" 2>/dev/null || sync',
  'mv "$M.new" "$M" || exit 51',
  'sync -f "$M" 2>/dev/null || sync',
  'finish "$d" "$o" "$M" || { printf "%s\\n" "moving the top-level entries of $d failed; the next deploy finishes the switch" >&2; exit 52; }',
  'sync -f "$d/" 2>/dev/null || sync',
  'rm -rf "$o" "$s" || printf "%s\\n" "the old tree $o could not be removed (the next deploy removes it)" >&2',
  'rmdir "$d/.lanha" 2>/dev/null',
  'exit 0',
].join('\n');

/** The remote command (one string, for the node's login shell) that runs `script` with `args`. */
export function nodeScriptCommand(script: string, args: readonly string[]): string {
  return ['sh', '-c', script, 'lanha-deploy', ...args].map(posixQuote).join(' ');
}

/**
 * The rsync --filter words that carry a sync's excluded paths from the live tree into the staging
 * directory: each exclude pattern and everything below what it matches, included.
 */
export function carryFilters(exclude: readonly string[]): string[] {
  return exclude.flatMap((p) => [`--filter=+ ${p}`, `--filter=+ ${p.replace(/\/+$/, '')}/***`]);
}

/**
 * `path` as /proc/mounts and /proc/self/mountinfo write it: a space, tab, newline and backslash as
 * the octal escapes `\040`, `\011`, `\012`, `\134` (the kernel's mangle), so that a field read
 * from those files can be compared with it as it stands.
 */
export function mountTablePath(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** A path read from /proc/mounts or /proc/self/mountinfo, its octal escapes (`\040` ...) read back. */
export function fromMountTable(field: string): string {
  return field.replace(/\\([0-3][0-7]{2})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** PREPARE_SCRIPT's arguments: the destination's two plans, then the sync's exclude patterns carried in. */
export function prepareArgs(beside: StagingPlan, inside: StagingPlan, exclude: readonly string[] = []): string[] {
  return [beside.dest, beside.staging, beside.old, beside.prefix, inside.staging, inside.old, inside.prefix, mountTablePath(beside.dest), ...carryFilters(exclude)];
}

/** The `lanha-mode` line of PREPARE_SCRIPT's output: staging (beside), inside, or in place and why; undefined when it said neither. */
export function parsePrepared(stdout: string): { mode: 'staging' | 'inside' } | { mode: 'in-place'; why: string } | undefined {
  const line = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('lanha-mode ')).pop();
  if (line === undefined) return undefined;
  if (line === 'lanha-mode staging') return { mode: 'staging' };
  if (line === 'lanha-mode inside') return { mode: 'inside' };
  const below = /^lanha-mode below (\S+)$/.exec(line);
  if (below !== null) return { mode: 'in-place', why: `a file system is mounted below it at ${fromMountTable(below[1]!)} (a switch would move its files with the old tree)` };
  const m = /^lanha-mode in-place (.+)$/.exec(line);
  return m === null ? undefined : { mode: 'in-place', why: m[1]! };
}
