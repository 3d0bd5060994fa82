import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open as openLocal, rm } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import type { Client, SFTPWrapper, ClientChannel, ServerHostKeyAlgorithm } from 'ssh2';
import { LanhaError, errorMessage } from '../../lib/errors.js';
import { SSH_KEEPALIVE, fingerprint, parseHostKey, secondsText } from './rsync.js';

// `lanctl deploy push` over ssh2 (pure JavaScript, no native code: .npmrc omits the optional
// cpu-features addon and runs no install scripts). Every connection passes a hostVerifier that
// compares the full pinned key: without one ssh2 accepts any key. A file goes to a temporary name
// in its destination directory, is fsynced (fsync@openssh.com), checked with a remote sha256sum,
// and renamed over the target atomically (posix-rename@openssh.com); a plain SFTP rename fails
// when the target exists on OpenSSH.

const CHUNK = 32 * 1024;
const IN_FLIGHT = 8;

/**
 * How long one SFTP request or remote check may go unanswered (rsync's --timeout=60 for the rootfs
 * path), and how long `--then` may run. A node that keeps the connection open but stops answering
 * (a stopped sshd, a hung disk, a black-holed link) fails its push with a message instead of
 * holding the job open forever; what is in place stays, and a resume sends the rest.
 */
export interface PushLimits {
  stepMs: number;
  thenMs: number;
}

export const PUSH_LIMITS: PushLimits = { stepMs: 60_000, thenMs: 600_000 };

/**
 * When a node counts as gone: keepalives are sent every `intervalMs`, and a connection that
 * received nothing at all (no answer to them, no SFTP reply, no output) for `countMax + 1`
 * intervals is closed. That is OpenSSH's ServerAliveInterval/ServerAliveCountMax rule, which the
 * rsync path runs with the same figures (rsync.ts SSH_KEEPALIVE), so both paths notice a node that
 * went silent after the same time, whatever step was waiting on it.
 */
export interface Keepalive {
  intervalMs: number;
  countMax: number;
}

export const KEEPALIVE: Keepalive = { intervalMs: SSH_KEEPALIVE.intervalS * 1000, countMax: SSH_KEEPALIVE.countMax };

/** How long a connection may receive nothing before it counts as dead (20 s with the defaults). */
export function silentLimitMs(keepalive: Keepalive): number {
  return keepalive.intervalMs * (keepalive.countMax + 1);
}

export interface Ssh2Target {
  node: string;
  host: string;
  port: number;
  user: string;
}

export interface PushFile {
  /** The path on the leader the operator named (recorded in the job; a resume reads it again). */
  source: string;
  /** What is sent: the job's private copy of `source`, made by the same read that gave `sha256`. */
  local: string;
  name: string;
  size: number;
  mode: number;
  sha256: string;
}

export class HostKeyMismatch extends LanhaError {
  constructor(readonly node: string, readonly offered: string, readonly pinned: string) {
    super('usage', `host key mismatch on ${node}: it offered ${offered}, the pinned key is ${pinned}; nothing was sent. If the node was reinstalled, check it and run \`lanctl nodes trust ${node} --replace\``);
  }
}

/** Connects with the pinned key checked first; a different key aborts before authentication. */
export function connectPinned(target: Ssh2Target, pinnedKey: string, privateKey: Buffer, timeoutMs = 10_000, keepalive: Keepalive = KEEPALIVE): Promise<Client> {
  const pinned = parseHostKey(pinnedKey);
  if (!pinned) return Promise.reject(new LanhaError('usage', `the pinned host key of ${target.node} is not an OpenSSH public key`));
  return loadSsh2().then((Ssh2Client) => new Promise((resolve, reject) => {
    const client = new Ssh2Client();
    // Our own socket: its byte count is what tells a node that went silent (watchSilence).
    const sock = createConnection({ host: target.host, port: target.port });
    // SSH ends a connection with its own message; a node's TCP FIN alone means sshd is gone. Without
    // this the socket would wait to flush what is queued for a peer that no longer reads.
    sock.once('end', () => sock.destroy());
    const link = linkOf(client);
    link.sock = sock;
    let mismatch: HostKeyMismatch | undefined;
    client.once('ready', () => {
      watchSilence(client, sock, link, keepalive);
      resolve(client);
    });
    client.once('error', (error) => {
      client.end();
      sock.destroy();
      reject(mismatch ?? new LanhaError('io', `ssh to ${target.node} (${target.host}:${target.port}) failed: ${error.message}`));
    });
    client.connect({
      sock, host: target.host, port: target.port, username: target.user, privateKey, readyTimeout: timeoutMs,
      // ssh2 ends a connection only when its own pings go unanswered, whatever else arrives: on a slow
      // link a ping queued behind the file data would count as missed though SFTP replies keep coming.
      // It only sends them here (so an idle node has something to answer); watchSilence decides.
      keepaliveInterval: keepalive.intervalMs, keepaliveCountMax: 2 ** 30,
      // ssh2 asks for the key type it prefers (Ed25519 first): a node that also has the pinned
      // ECDSA or RSA key would offer another key and be refused as changed.
      algorithms: { serverHostKey: hostKeyAlgorithms(pinned.type) as ServerHostKeyAlgorithm[] },
      // Why: ssh2 accepts any host key when no hostVerifier is given.
      hostVerifier: (key: Buffer) => {
        if (Buffer.compare(key, pinned.blob) === 0) return true;
        mismatch = new HostKeyMismatch(target.node, fingerprint(key), fingerprint(pinned.blob));
        return false;
      },
    });
  }));
}

/**
 * What became of a connection: once it ended, every step on it fails at once with the reason. ssh2
 * fails the requests pending when a connection closes ("No response from server") but files a
 * request made on a closed channel (an SFTP close or unlink in a cleanup path) without ever
 * answering it, so without this such a step waited out its whole bound after a node was gone.
 */
interface Link {
  /** Why it ended: set by the step bound, the silence watch, or the first socket error. */
  reason?: LostReason;
  ended: boolean;
  /** Steps waiting on it, told when it ends. */
  waiters: Set<() => void>;
  /** The error the first step that failed with the connection reported; later steps report it too. */
  error?: LanhaError;
  /** The TCP socket under the client (connectPinned's). */
  sock?: Socket;
}

/**
 * Tears a connection down now: ssh2's destroy() does nothing once the socket stopped being writable
 * (the node's FIN arrived and Node began ending its side), so the socket is destroyed as well.
 */
function cut(client: Client, link: Link): void {
  client.destroy();
  link.sock?.destroy();
}

/** Closes a connection at once, dropping what is queued on it (a cancelled job: on a slow link end() would first send the whole file). */
export function disconnect(client: Client): void {
  cut(client, linkOf(client));
}

type LostReason =
  | { kind: 'stalled'; ms: number }
  | { kind: 'silent'; ms: number; intervalMs: number }
  | { kind: 'error'; message: string };

const links = new WeakMap<Client, Link>();

function linkOf(client: Client): Link {
  let link = links.get(client);
  if (link !== undefined) return link;
  const made: Link = { ended: false, waiters: new Set() };
  links.set(client, made);
  // A listener for as long as the client lives: ssh2 may emit more than one error (a socket error,
  // then a protocol error), and an error with no listener would end the daemon.
  client.on('error', (error: Error) => { made.reason ??= { kind: 'error', message: error.message }; });
  client.once('close', () => {
    made.ended = true;
    for (const wake of [...made.waiters]) wake();
    made.waiters.clear();
  });
  link = made;
  return link;
}

/**
 * Closes the connection when nothing at all arrived on it for silentLimitMs (OpenSSH's ServerAlive
 * rule). Silence is counted tick by tick, and a tick that comes late counts as at most two: while
 * this process was too busy to look, data may have arrived unread, so that time is not silence heard.
 */
function watchSilence(client: Client, sock: Socket, link: Link, keepalive: Keepalive): void {
  const limit = silentLimitMs(keepalive);
  const every = Math.min(1000, Math.max(10, keepalive.intervalMs / 5));
  let bytes = sock.bytesRead;
  let silent = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const elapsed = Math.min(now - last, 2 * every);
    last = now;
    if (sock.bytesRead !== bytes) {
      bytes = sock.bytesRead;
      silent = 0;
      return;
    }
    silent += elapsed;
    if (silent < limit) return;
    clearInterval(timer);
    link.reason ??= { kind: 'silent', ms: limit, intervalMs: keepalive.intervalMs };
    cut(client, link);
  }, every);
  timer.unref();
  client.once('close', () => clearInterval(timer));
}

/**
 * ssh2, loaded on first use: it costs every process that imports it ~6 MiB resident and 16 MiB of
 * external memory (its crypto module's heap), and only a leader running a deploy job needs it.
 */
async function loadSsh2(): Promise<typeof Client> {
  return (await import('ssh2')).Client;
}

/**
 * The host key algorithms that offer a key of `type` (an RSA key signs as rsa-sha2-*): asking only
 * for those makes a node with several host keys show the one pinned, not the one ssh2 prefers.
 */
export function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

/**
 * Fetches a node's host key (the key ssh2 is offered; the connection is dropped before login), of
 * the pinned key's type when `keyType` is given.
 */
export function fetchHostKey(target: Ssh2Target, timeoutMs = 10_000, keyType?: string): Promise<string> {
  return loadSsh2().then((Ssh2Client) => new Promise((resolve, reject) => {
    const client = new Ssh2Client();
    let offered: string | undefined;
    client.once('error', (error) => {
      client.end();
      if (offered !== undefined) resolve(offered);
      else reject(new LanhaError('io', `cannot reach ${target.node} at ${target.host}:${target.port}, or it offered no well-formed host key: ${error.message}`));
    });
    client.once('ready', () => { client.end(); if (offered !== undefined) resolve(offered); });
    client.connect({
      host: target.host, port: target.port, username: target.user, readyTimeout: timeoutMs,
      ...(keyType === undefined ? {} : { algorithms: { serverHostKey: hostKeyAlgorithms(keyType) as ServerHostKeyAlgorithm[] } }),
      hostVerifier: (key: Buffer) => {
        offered = offeredKeyText(key);
        return false; // fetched; never log in on an unconfirmed key
      },
    });
  }));
}

/**
 * "type base64" of a host key blob a server offered, or undefined when the blob does not start with
 * a key type name (RFC 4253 §6.6): the server chooses these bytes, and they are shown to the operator.
 */
export function offeredKeyText(key: Buffer): string | undefined {
  const len = key.length >= 4 ? key.readUInt32BE(0) : -1;
  const type = len > 0 && len <= 64 && 4 + len <= key.length ? key.subarray(4, 4 + len).toString('latin1') : '';
  if (!/^[a-z0-9][a-z0-9.@-]*$/.test(type)) return undefined;
  const text = `${type} ${key.toString('base64')}`;
  // Only a type lanha can pin (parseHostKey's): anything else would fail later, in `nodes trust`.
  return parseHostKey(text) === null ? undefined : text;
}

/**
 * Reads each source once into `stageDir` (the job's private copy): the same bytes give the sha256
 * the job records and are what every node is sent, so a source edited while the job runs (or between
 * a resume's check and its sends) can neither reach some nodes and not others nor make the recorded
 * checksum describe other bytes than those installed. Size and mode come from the open file, not a
 * second lookup of the path. On an error nothing is left in `stageDir`.
 */
export async function stageSources(paths: readonly string[], stageDir: string): Promise<PushFile[]> {
  await rm(stageDir, { recursive: true, force: true }); // left by a daemon that stopped mid-job
  await mkdir(stageDir, { recursive: true, mode: 0o700 });
  try {
    const files: PushFile[] = [];
    for (const [i, path] of paths.entries()) files.push(await stageOne(path, join(stageDir, String(i))));
    return files;
  } catch (error) {
    await rm(stageDir, { recursive: true, force: true });
    throw error;
  }
}

async function stageOne(path: string, copy: string): Promise<PushFile> {
  let source;
  // O_NONBLOCK: a FIFO named as a source must not block the open; it is refused below as not a regular file.
  try { source = await openLocal(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK); } catch (error) { throw new LanhaError('not-found', `${path}: ${errorMessage(error)}`); }
  try {
    const st = await source.stat();
    if (!st.isFile()) throw new LanhaError('usage', `${path} is not a regular file`);
    const out = await openLocal(copy, 'wx', 0o600);
    const hash = createHash('sha256');
    let size = 0;
    try {
      const buffer = Buffer.alloc(1 << 20);
      for (;;) {
        const { bytesRead } = await source.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        const chunk = buffer.subarray(0, bytesRead);
        hash.update(chunk);
        await out.write(chunk);
        size += bytesRead;
      }
    } finally {
      await out.close();
    }
    return { source: path, local: copy, name: basename(path), size, mode: st.mode & 0o777, sha256: hash.digest('hex') };
  } finally {
    await source.close();
  }
}

/**
 * The absolute remote directory for `--dest DIR` under `root`: refused when it leaves the root
 * (after normalising "..") or names something odd. The symlink check needs the node (checkRemoteDir).
 */
export function destinationDir(root: string, dest: string | undefined): string {
  const base = posix.normalize(root.startsWith('/') ? root : `/${root}`).replace(/\/+$/, '') || '/';
  const wanted = dest === undefined ? base : posix.normalize(dest.startsWith('/') ? dest : `${base}/${dest}`).replace(/\/+$/, '') || '/';
  if (/[\0\n]/.test(wanted)) throw new LanhaError('usage', 'the destination holds a NUL or newline');
  if (base !== '/' && wanted !== base && !wanted.startsWith(`${base}/`)) {
    throw new LanhaError('usage', `destination ${dest} escapes the push root ${base} (deploy.pushRoot); refused`);
  }
  return wanted;
}

function sftpOf(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((error, sftp) => (error ? reject(error) : resolve(sftp))));
}

const call = <T>(fn: (cb: (error: Error | null | undefined, value: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value))));

/** Refuses a destination directory reached through a symlink (its real path differs) or missing. */
async function checkRemoteDir(sftp: SFTPWrapper, dir: string, node: string, step: Step): Promise<void> {
  let real: string;
  try {
    real = await step(`realpath ${dir}`, call<string>((cb) => sftp.realpath(dir, cb)));
  } catch (error) {
    if ((error as { sftpStatus?: unknown }).sftpStatus !== 2) throw error; // 2: NO_SUCH_FILE
    throw new LanhaError('not-found', `${node}: destination ${dir} does not exist`);
  }
  if (real !== dir) throw new LanhaError('usage', `${node}: destination ${dir} goes through a symlink (it is really ${real}); refused`);
  const st = await step(`lstat ${dir}`, call<{ isDirectory(): boolean }>((cb) => sftp.lstat(dir, cb as never)));
  if (!st.isDirectory()) throw new LanhaError('usage', `${node}: destination ${dir} is not a directory`);
}

export interface PushResult {
  bytes: number;
  files: number;
  then?: { code: number | null; output: string };
}

/**
 * Pushes files to one node: temp name, fsync, sha256 check, atomic rename; then runs `then`.
 * `onInstalled` hears of each file once it is in place (and is awaited: the job records it).
 */
export async function pushToNode(client: Client, node: string, files: readonly PushFile[], dir: string, then: string | undefined, onBytes: (n: number) => void,
  onInstalled: (name: string) => Promise<void> = async () => undefined, limits: PushLimits = PUSH_LIMITS): Promise<PushResult> {
  const step = bounded(client, node, limits.stepMs);
  const sftp = await step('opening SFTP', sftpOf(client));
  try {
    await checkRemoteDir(sftp, dir, node, step);
    let bytes = 0;
    for (const file of files) {
      const target = `${dir === '/' ? '' : dir}/${file.name}`;
      const existing = await step(`lstat ${target}`, call<{ isSymbolicLink(): boolean }>((cb) => sftp.lstat(target, cb as never)).catch(() => undefined));
      if (existing?.isSymbolicLink()) throw new LanhaError('usage', `${node}: ${target} is a symlink; refused (it would be replaced, not followed, but a symlink there is a surprise)`);
      await step(`listing ${dir}`, removeStaleTemps(sftp, dir, file.name));
      const temp = `${dir === '/' ? '' : dir}/.${file.name}.lanha-${randomBytes(4).toString('hex')}`;
      try {
        await writeRemote(sftp, file, temp, (n) => { bytes += n; onBytes(bytes); }, step);
        // From stdin: GNU sha256sum escapes a line whose file name holds a backslash or a newline (`\HASH  a\\b`).
        const sum = await step(`sha256sum of ${temp}`, execCapture(client, `sha256sum < ${quote(temp)}`));
        const remote = /^([0-9a-f]{64})\s/.exec(sum.output)?.[1];
        if (sum.code !== 0 || remote === undefined) throw new LanhaError('io', `${node}: sha256sum of ${temp} failed: ${sum.output.trim().slice(0, 200)}`);
        if (remote !== file.sha256) throw new LanhaError('io', `${node}: ${file.name} arrived damaged (sha256 ${remote.slice(0, 12)}, sent ${file.sha256.slice(0, 12)}); not installed`);
        await step(`renaming ${temp}`, call<void>((cb) => sftp.ext_openssh_rename(temp, target, cb as never)));
      } catch (error) {
        const cleanup = bounded(client, node, Math.min(limits.stepMs, 5000));
        // Before the temp goes (that frees its space again): a write the node refused for want of space says so.
        const full = isSftpFailure(error) ? await diskFull(sftp, node, dir, file, cleanup) : undefined;
        // Fails at once when the connection is gone (the temp is then removed by the next push to this directory).
        await cleanup(`removing ${temp}`, call<void>((cb) => sftp.unlink(temp, cb as never))).catch(() => undefined);
        throw full ?? error;
      }
      await onInstalled(file.name);
    }
    const result: PushResult = { bytes, files: files.length };
    if (then !== undefined) result.then = await bounded(client, node, limits.thenMs)('--then', execCapture(client, then));
    return result;
  } finally {
    sftp.end();
  }
}

type Step = <T>(what: string, promise: Promise<T>) => Promise<T>;

/** An SFTP status FAILURE (4): what OpenSSH's sftp-server answers for ENOSPC, EIO and the like. */
function isSftpFailure(error: unknown): boolean {
  return error instanceof Error && (error as { sftpStatus?: unknown }).sftpStatus === 4;
}

/** The node's disk in words when it has less room than `file` needs, else undefined (statvfs@openssh.com, bounded). */
async function diskFull(sftp: SFTPWrapper, node: string, dir: string, file: PushFile, step: Step): Promise<LanhaError | undefined> {
  const fs = await step(`statvfs ${dir}`, call<{ f_bavail: number; f_frsize: number }>((cb) => sftp.ext_openssh_statvfs(dir, cb as never))).catch(() => undefined);
  if (fs === undefined) return undefined;
  const free = Number(fs.f_bavail) * Number(fs.f_frsize);
  if (free >= file.size) return undefined;
  return new LanhaError('io', `${node}: the disk under ${dir} is full (${free} bytes free, ${file.name} is ${file.size} bytes): ${file.name} was not installed; files already in place stay (make room, then lanctl deploy resume)`);
}

/**
 * Bounds each step of a push: past `ms` without an answer the connection is destroyed (every request
 * on it fails at once) and the step fails with a message naming it. A step whose connection ended
 * (sshd killed, the node rebooted, the node went silent past the keepalive limit) fails as soon as it
 * ended, saying why and naming the step; later steps on it report the same error, not its fallout.
 */
function bounded(client: Client, node: string, ms: number): Step {
  const link = linkOf(client);
  return <T>(what: string, promise: Promise<T>): Promise<T> => new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const settle = (): void => { clearTimeout(timer); link.waiters.delete(onEnd); };
    const onEnd = (): void => {
      settle();
      promise.catch(() => undefined); // ssh2 fails it too, or never answers it
      reject(lostError(link, node, what, undefined));
    };
    // After the connection ended or is being closed, a cleanup step fails at once instead of waiting again.
    if (link.ended || link.reason !== undefined) {
      onEnd();
      return;
    }
    timer = setTimeout(() => {
      link.reason ??= { kind: 'stalled', ms };
      onEnd();
      cut(client, link);
    }, ms);
    link.waiters.add(onEnd);
    promise.then((value) => { settle(); resolve(value); }, (error: unknown) => {
      settle();
      if (link.reason !== undefined || link.ended || isConnectionLost(error)) { reject(lostError(link, node, what, error)); return; }
      reject(error instanceof LanhaError ? error : Object.assign(new LanhaError('io', `${node}: ${what} failed: ${errorMessage(error)}`), { sftpStatus: (error as { code?: unknown }).code }));
    });
  });
}

const RESUME_HINT = 'files already in place stay (lanctl deploy resume sends the rest)';

/** The error of the first step that failed with the connection, made once and reported by every later step. */
function lostError(link: Link, node: string, what: string, error: unknown): LanhaError {
  if (link.error !== undefined) return link.error;
  const reason = link.reason;
  let text: string;
  if (reason?.kind === 'stalled') {
    text = `${node}: ${what} got no answer in ${secondsText(reason.ms)} (the node or the network stalled); the connection was closed, ${RESUME_HINT}`;
  } else if (reason?.kind === 'silent') {
    text = `${node}: the connection went silent for ${secondsText(reason.ms)} while ${what}: nothing came back from the node, not even an answer to the ssh keepalives sent every ${secondsText(reason.intervalMs)} (the node, its sshd or the network stopped); the connection was closed, ${RESUME_HINT}`;
  } else {
    const why = reason?.kind === 'error' ? reason.message : link.ended ? 'the node closed the connection' : errorMessage(error);
    text = `${node}: the connection was lost while ${what} (${why}); ${RESUME_HINT}`;
  }
  link.error = new LanhaError('io', text);
  return link.error;
}

/** ssh2's error for requests pending on a channel that closed under them, and socket-level ends. */
function isConnectionLost(error: unknown): boolean {
  const message = errorMessage(error);
  return message === 'No response from server' || /^(Not connected|Channel not open|No SSH connection)|ECONNRESET|EPIPE/.test(message);
}

/** Removes `.NAME.lanha-XXXXXXXX` left in DIR by a push that was cut off (a resume sends the file again). */
async function removeStaleTemps(sftp: SFTPWrapper, dir: string, name: string): Promise<void> {
  const list = await call<Array<{ filename: string }>>((cb) => sftp.readdir(dir, cb as never)).catch(() => []);
  for (const entry of list) {
    if (!entry.filename.startsWith(`.${name}.lanha-`) || !/^[0-9a-f]{8}$/.test(entry.filename.slice(name.length + 8))) continue;
    await call<void>((cb) => sftp.unlink(`${dir === '/' ? '' : dir}/${entry.filename}`, cb as never)).catch(() => undefined);
  }
}

async function writeRemote(sftp: SFTPWrapper, file: PushFile, temp: string, onBytes: (n: number) => void, step: Step): Promise<void> {
  const handle = await step(`opening ${temp}`, call<Buffer>((cb) => sftp.open(temp, 'wx', { mode: file.mode }, cb)));
  const local = await openLocal(file.local, 'r');
  try {
    let position = 0;
    const inFlight = new Set<Promise<void>>();
    while (position < file.size) {
      const length = Math.min(CHUNK, file.size - position);
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await local.read(buffer, 0, length, position);
      if (bytesRead !== length) throw new LanhaError('io', `${file.local} changed while being sent`);
      const at = position;
      const p = step(`writing ${temp} at ${at}`, call<void>((cb) => sftp.write(handle, buffer, 0, length, at, cb as never))).then(() => { onBytes(length); });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p)).catch(() => undefined);
      if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      position += length;
    }
    await Promise.all(inFlight);
    await step(`fsync of ${temp}`, call<void>((cb) => sftp.ext_openssh_fsync(handle, cb as never)));
  } finally {
    await local.close();
    await step(`closing ${temp}`, call<void>((cb) => sftp.close(handle, cb as never))).catch(() => undefined);
  }
}

export function execCapture(client: Client, command: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error: Error | undefined, stream: ClientChannel) => {
      if (error) { reject(error); return; }
      let output = '';
      stream.on('data', (d: Buffer) => { if (output.length < 65536) output += d.toString(); });
      stream.stderr.on('data', (d: Buffer) => { if (output.length < 65536) output += d.toString(); });
      stream.on('close', (code: number | null) => resolve({ code, output }));
    });
  });
}

function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
