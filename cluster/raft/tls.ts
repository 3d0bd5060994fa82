import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { ClusterConfig } from '../config.js';

// Mutual TLS for the Raft peer links: the files of `cluster.tls` read and checked (one set of checks
// for `lanctl config check` and for the daemon's start), and the rules a peer's certificate must
// pass beyond the chain TLS checks: a DNS SAN naming the member it speaks for, and that member's
// SHA-256 pin when the config gives one. No sockets here (tls-channel.ts); time comes in as nowMs.

/** The three files of `cluster.tls` (PEM). */
export interface TlsFiles { ca: string; cert: string; key: string }

/** What the transport needs to speak TLS: the PEM texts, the key, and the pins by member name. */
export interface TlsMaterial {
  ca: string;
  cert: string;
  /** The private key, PEM (checked: ECDSA P-256, matches cert). */
  key: string;
  /** Member name -> SHA-256 of its certificate (DER), lowercase hex; only members the config pins. */
  pins: Record<string, string>;
}

/** One thing wrong with the files, under the key path that names it. */
export interface TlsProblem { path: string; message: string }

/** Why a peer's certificate may not speak for a member, or null when it may. */
export interface PeerRefusal { reason: 'tls-wrong-member' | 'tls-pin'; detail: Record<string, unknown> }

/** A pin as written in the config (hex, colons and case free) as the transport compares it. */
export function normalizePin(pin: string): string {
  return pin.replace(/:/g, '').toLowerCase();
}

/** The SHA-256 of a certificate's DER, lowercase hex without colons. */
export function certPin(cert: X509Certificate): string {
  return normalizePin(cert.fingerprint256);
}

/** The DNS names in a certificate's subjectAltName (member names are DNS SANs). */
export function certDnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4));
}

/** Whether `cert` may speak for `member`: its SAN names it and, when pinned, its SHA-256 is the pin. */
export function peerRefusal(cert: X509Certificate, member: string, pins: Readonly<Record<string, string>>): PeerRefusal | null {
  const names = certDnsNames(cert);
  if (!names.includes(member)) return { reason: 'tls-wrong-member', detail: { member, certNames: names } };
  const pin = pins[member];
  if (pin !== undefined && certPin(cert) !== pin) return { reason: 'tls-pin', detail: { member, certSha256: certPin(cert), pinned: pin } };
  return null;
}

function validity(cert: X509Certificate, file: string, nowMs: number): string | null {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (nowMs > to) return `${file} expired on ${cert.validTo} (make new certificates: lanctl init --tls --renew for a member's, --force for the CA)`;
  if (nowMs < from) return `${file} is not valid before ${cert.validFrom} (is this clock right?)`;
  return null;
}

export type Read<T> = { ok: true; value: T } | { ok: false; message: string };

/** Largest TLS file read (a CA bundle of hundreds of certificates is well under it). */
export const TLS_FILE_BYTES_MAX = 1 << 20;

function readText(file: string): Read<string> {
  try {
    // A FIFO or device in place of a file would block the reader for good (config check, a start,
    // a SIGHUP review); a huge file would be read whole.
    const stat = statSync(file);
    if (!stat.isFile()) return { ok: false, message: `${file} is not a regular file` };
    if (stat.size > TLS_FILE_BYTES_MAX) return { ok: false, message: `${file} is ${stat.size} bytes, more than a TLS file holds (${TLS_FILE_BYTES_MAX})` };
    return { ok: true, value: readFileSync(file, 'utf8') };
  } catch (error) {
    return { ok: false, message: `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
}

function parseCert(file: string, text: string): Read<X509Certificate> {
  try {
    return { ok: true, value: new X509Certificate(text) };
  } catch {
    return { ok: false, message: `${file} is not a PEM certificate` };
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * The certificates of a CA file: one CA, or during a CA rotation several (the new CA first, then the
 * one it replaces: lanctl init --tls --rotate-ca), each trusted alike by the peer links.
 */
export function caBundle(text: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const m of text.matchAll(PEM_CERT)) out.push(new X509Certificate(m[0]));
  return out;
}

const PEM_BLOCK = /-----BEGIN ([^-\r\n]{1,64})-----[\s\S]*?(?:-----END [^-\r\n]{1,64}-----|$)/g;

/**
 * The certificates of a CA file, or what is wrong with it, naming the block: text around the PEM
 * blocks is let be (comments, as OpenSSL reads it), but every block must be a certificate. A
 * private key there above all: the CA file is copied to every member (`cat ca.key ca.pem >`
 * would hand the CA's key to each), so it is refused, not skipped.
 */
export function readCaBundle(file: string, text: string): Read<X509Certificate[]> {
  const certs: X509Certificate[] = [];
  let n = 0;
  for (const m of text.matchAll(PEM_BLOCK)) {
    n++;
    const label = m[1]!;
    const where = `${file} (PEM block ${n}, ${label})`;
    if (/PRIVATE KEY/.test(label)) return { ok: false, message: `${where} holds a private key: the CA file goes to every member; keep the key apart (ca.key) and leave only certificates in ${file}` };
    if (label !== 'CERTIFICATE') return { ok: false, message: `${where} is not a certificate: the CA file holds CERTIFICATE blocks only` };
    try {
      certs.push(new X509Certificate(m[0]));
    } catch {
      return { ok: false, message: `${where} is not a readable certificate (cut or damaged base64?)` };
    }
  }
  return certs.length > 0 ? { ok: true, value: certs } : { ok: false, message: `${file} is not a PEM certificate` };
}

const parseBundle = readCaBundle;

/** "a" or "an" before a word as read aloud (an RSA key, an ed25519 key, an ec key). */
function article(word: string): string {
  return /^([aeio]|rsa|ec\b|ed)/i.test(word) ? 'an' : 'a';
}

/** When the earliest certificate of a CA file ends (ISO): the one a doctor must warn about first. */
export function bundleValidTo(text: string): string {
  const ends = caBundle(text).map((c) => Date.parse(c.validTo));
  return new Date(ends.length === 0 ? NaN : Math.min(...ends)).toISOString();
}

function parseKey(file: string, text: string): Read<KeyObject> {
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch {
    return { ok: false, message: `${file} is not a PEM private key (or it is encrypted)` };
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    const type = key.asymmetricKeyType ?? '?';
    return { ok: false, message: `${file} is ${article(type)} ${type === 'rsa' ? 'RSA' : type}${curve ? ` ${curve}` : ''} key; the peer links use ECDSA P-256 keys (lanctl init --tls makes them)` };
  }
  return { ok: true, value: key };
}

export interface TlsCheckInput {
  files: TlsFiles;
  /** This member: its certificate must name it. */
  self: string;
  /** Pins from cluster.members[].certSha256, by member name, as written. */
  pins: Record<string, string>;
  /** Where each member sits in cluster.members, for the key paths of pin problems. */
  memberIndex: Record<string, number>;
  nowMs: number;
}

/**
 * Reads and checks the `cluster.tls` files: readable, PEM, an ECDSA P-256 key of mode 0600 that
 * matches the certificate, a certificate the CA signed that names this member and is valid now,
 * this member's own pin. Returns the material, or every problem found (nothing thrown).
 */
export function readTlsMaterial(input: TlsCheckInput): { ok: true; material: TlsMaterial } | { ok: false; problems: TlsProblem[] } {
  const { files, self, nowMs } = input;
  const problems: TlsProblem[] = [];
  const add = (key: keyof TlsFiles | 'pin', message: string): void => {
    problems.push({ path: key === 'pin' ? `cluster.members[${input.memberIndex[self] ?? '?'}].certSha256` : `cluster.tls.${key}`, message });
  };
  const texts: Partial<Record<keyof TlsFiles, string>> = {};
  for (const key of ['ca', 'cert', 'key'] as const) {
    const read = readText(files[key]);
    if (read.ok) texts[key] = read.value; else add(key, read.message);
  }
  const ca = texts.ca === undefined ? undefined : parseBundle(files.ca, texts.ca);
  const cert = texts.cert === undefined ? undefined : parseCert(files.cert, texts.cert);
  const key = texts.key === undefined ? undefined : parseKey(files.key, texts.key);
  if (ca && !ca.ok) add('ca', ca.message);
  if (cert && !cert.ok) add('cert', cert.message);
  if (key && !key.ok) add('key', key.message);
  if (texts.key !== undefined) {
    const mode = statSync(files.key).mode & 0o777;
    if ((mode & 0o077) !== 0) add('key', `${files.key} is mode 0${mode.toString(8)}: readable by group or others (chmod 600 ${files.key})`);
  }
  if (ca?.ok) {
    const several = ca.value.length > 1;
    // During a rotation the old CA may run out before --finish-rotation: while another CA of the
    // file is valid and this member's certificate is not the expired one's, that is no reason to
    // refuse a start (a member rebooting mid-rotation stayed down); doctor warns of the CA's end.
    const anyValid = ca.value.some((c) => validity(c, '', nowMs) === null);
    const mine = cert?.ok === true ? cert.value : undefined;
    ca.value.forEach((c, i) => {
      const which = several ? `${files.ca} (certificate ${i + 1} of ${ca.value.length}, ${c.subject.replace(/\n/g, ', ')})` : files.ca;
      if (!c.ca) add('ca', `${which} is not a CA certificate (no basicConstraints CA:TRUE); give the cluster CA lanctl init --tls made`);
      const when = validity(c, which, nowMs);
      if (when === null) return;
      if (!several) add('ca', when);
      else if (mine !== undefined && mine.checkIssued(c) && mine.verify(c.publicKey)) add('ca', `${when}, and ${files.cert} is its: renew this member's certificate from the new CA (lanctl init --tls --renew), then lanctl init --tls --finish-rotation`);
      else if (!anyValid) add('ca', `${when}; no CA of ${files.ca} is valid now`);
    });
  }
  if (cert?.ok) {
    const c = cert.value;
    if (key?.ok && !c.checkPrivateKey(key.value)) add('key', `${files.key} does not match the certificate in ${files.cert}`);
    if (ca?.ok && !ca.value.some((authority) => c.checkIssued(authority) && c.verify(authority.publicKey))) add('cert', `${files.cert} is not signed by ${ca.value.length > 1 ? 'any CA' : 'the CA'} in ${files.ca}`);
    const names = certDnsNames(c);
    if (!names.includes(self)) add('cert', `${files.cert} names ${names.length === 0 ? 'no member' : names.map((n) => `DNS:${n}`).join(', ')}, not this member (${self}): give this member its own certificate`);
    const when = validity(c, files.cert, nowMs);
    if (when) add('cert', when);
    const pin = input.pins[self];
    if (pin !== undefined && normalizePin(pin) !== certPin(c)) add('pin', `does not match ${files.cert} (its SHA-256 is ${certPin(c)})`);
  }
  if (problems.length > 0 || !key?.ok || texts.ca === undefined || texts.cert === undefined) return { ok: false, problems };
  const pins = Object.fromEntries(Object.entries(input.pins).map(([name, pin]) => [name, normalizePin(pin)]));
  return { ok: true, material: { ca: texts.ca, cert: texts.cert, key: texts.key!, pins } };
}

/** The TLS material of `cluster.tls` for member `self`, or every problem with it (config check, start). */
export function clusterTlsMaterial(cluster: Pick<ClusterConfig, 'tls' | 'members'>, self: string, nowMs: number): ReturnType<typeof readTlsMaterial> {
  if (cluster.tls === undefined) return { ok: false, problems: [{ path: 'cluster.tls', message: 'is not set' }] };
  const pins: Record<string, string> = {};
  const memberIndex: Record<string, number> = {};
  cluster.members.forEach((m, i) => {
    memberIndex[m.name] = i;
    if (m.certSha256 !== undefined) pins[m.name] = m.certSha256;
  });
  return readTlsMaterial({ files: cluster.tls, self, pins, memberIndex, nowMs });
}

/** One line per problem, as config errors read: `cluster.tls.key: /etc/lanha/tls/a.key is mode 0644 ...`. */
export function formatTlsProblems(problems: readonly TlsProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('\n');
}
