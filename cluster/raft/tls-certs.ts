import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPERATOR_OU } from '../../lib/remote-control.js';

// Certificates for the peer links' mutual TLS, made with the system `openssl` command (Node's crypto
// makes keys and signatures but encodes no X.509; openssl is on every Debian and Raspberry Pi OS
// system, `ca-certificates` depends on it). Keys are ECDSA P-256, made by Node and written mode
// 0600 before any byte of them; openssl only signs. Every openssl call gets its own small config,
// so the system's openssl.cnf changes nothing, and works with OpenSSL 1.1.1 and 3.x.

export class OpensslError extends Error {}

function openssl(args: string[], input?: string): string {
  const run = spawnSync('openssl', args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  if (run.error) {
    const code = (run.error as NodeJS.ErrnoException).code;
    throw new OpensslError(code === 'ENOENT'
      ? 'the openssl command is not installed: certificates are made with it (apt-get install openssl)'
      : `could not run openssl: ${run.error.message}`);
  }
  if (run.status !== 0) throw new OpensslError(`openssl ${args[0]} failed: ${run.stderr.trim().split('\n').slice(-2).join(' / ')}`);
  return run.stdout;
}

/** A positive random 128-bit serial, as openssl's -set_serial takes it. */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f | 0x01;
  return `0x${bytes.toString('hex')}`;
}

/** A new ECDSA P-256 private key, PKCS#8 PEM, written to `file` with mode 0600. */
export function writeP256Key(file: string): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(file, pem, { mode: 0o600, flag: 'w' });
  return pem;
}

function withScratch<T>(run: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-tls-'));
  try {
    return run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Makes a self-signed CA certificate for `keyFile` (valid `days` from now); returns its PEM. */
export function makeCaCert(keyFile: string, commonName: string, days: number): string {
  return withScratch((dir) => {
    const config = join(dir, 'ca.cnf');
    writeFileSync(config, [
      '[req]', 'distinguished_name = dn', 'prompt = no', 'x509_extensions = ca_ext',
      '[dn]', `CN = ${commonName}`,
      '[ca_ext]', 'basicConstraints = critical,CA:TRUE,pathlen:0', 'keyUsage = critical,keyCertSign,cRLSign', 'subjectKeyIdentifier = hash',
      '',
    ].join('\n'));
    return openssl(['req', '-x509', '-new', '-config', config, '-key', keyFile, '-sha256', '-days', String(days), '-set_serial', serial()]);
  });
}

export interface MemberCertRequest {
  /** The member name: the certificate's DNS SAN and common name. */
  name: string;
  /** The member's address: an IP SAN when it is an IP address, else a second DNS SAN. */
  address?: string;
  keyFile: string;
  caCertFile: string;
  caKeyFile: string;
  /** Validity from now in days; negative makes a certificate that has already expired (tests). */
  days: number;
}

/** Makes a member's certificate, signed by the CA, for its key; returns its PEM. */
export function makeMemberCert(request: MemberCertRequest): string {
  const sans = [`DNS:${request.name}`];
  if (request.address !== undefined && request.address !== request.name) sans.push(isIP(request.address) ? `IP:${request.address}` : `DNS:${request.address}`);
  return signLeaf(request, [`CN = ${request.name}`], ['extendedKeyUsage = serverAuth,clientAuth', `subjectAltName = ${sans.join(',')}`]);
}

/** Makes an operator's client certificate (CN the operator's name, OU OPERATOR_OU), signed by the CA; returns its PEM. */
export function makeOperatorCert(request: Omit<MemberCertRequest, 'address'>): string {
  return signLeaf(request, [`CN = ${request.name}`, `OU = ${OPERATOR_OU}`], ['extendedKeyUsage = clientAuth']);
}

/** A leaf certificate for `request.keyFile` with the subject `dn` and the extensions `ext` besides the usual ones. */
function signLeaf(request: Omit<MemberCertRequest, 'address' | 'name'>, dn: string[], ext: string[]): string {
  return withScratch((dir) => {
    const config = join(dir, 'leaf.cnf');
    writeFileSync(config, [
      '[req]', 'distinguished_name = dn', 'prompt = no',
      '[dn]', ...dn,
      '[leaf_ext]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', ...ext,
      'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'));
    const csr = openssl(['req', '-new', '-config', config, '-key', request.keyFile, '-sha256']);
    return openssl(['x509', '-req', '-CA', request.caCertFile, '-CAkey', request.caKeyFile, '-set_serial', serial(), '-sha256',
      '-days', String(request.days), '-extfile', config, '-extensions', 'leaf_ext'], csr);
  });
}

export interface ClusterCertFiles {
  caCert: string;
  caKey: string;
  members: Record<string, { cert: string; key: string }>;
}

/** Where `makeClusterCerts` writes, in `dir`: ca.pem, ca.key, and <member>.pem / <member>.key. */
export function clusterCertPaths(dir: string, members: readonly string[]): ClusterCertFiles {
  return {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    members: Object.fromEntries(members.map((m) => [m, { cert: join(dir, `${m}.pem`), key: join(dir, `${m}.key`) }])),
  };
}

/**
 * A key + certificate per member in `dir`, signed by the CA already there (ca.pem, ca.key); keys
 * mode 0600. With `replace` (renewal) both are made beside the old ones and renamed over them, so a
 * failure (openssl, a full disk) leaves the member's old pair as it was, not a key without its certificate.
 */
export function makeMemberCerts(dir: string, members: ReadonlyArray<{ name: string; address?: string }>, days: number, options: { replace?: boolean } = {}): ClusterCertFiles {
  const paths = clusterCertPaths(dir, members.map((m) => m.name));
  for (const m of members) {
    const files = paths.members[m.name]!;
    const made = options.replace === true ? { key: `${files.key}.new`, cert: `${files.cert}.new` } : files;
    writeP256Key(made.key);
    writeFileSync(made.cert, makeMemberCert({ name: m.name, ...(m.address !== undefined ? { address: m.address } : {}), keyFile: made.key, caCertFile: paths.caCert, caKeyFile: paths.caKey, days }));
    if (made !== files) {
      renameSync(made.key, files.key);
      renameSync(made.cert, files.cert);
    }
  }
  return paths;
}

/** A cluster CA and one key + certificate per member in `dir` (which must exist); keys mode 0600. */
export function makeClusterCerts(dir: string, clusterId: string, members: ReadonlyArray<{ name: string; address?: string }>, days: { ca: number; member: number }): ClusterCertFiles {
  const paths = clusterCertPaths(dir, []);
  writeP256Key(paths.caKey);
  writeFileSync(paths.caCert, makeCaCert(paths.caKey, `lanha cluster CA ${clusterId}`, days.ca));
  return makeMemberCerts(dir, members, days.member);
}
