import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { OpensslError, clusterCertPaths, makeCaCert, writeP256Key } from './tls-certs.js';
import { readCaBundle } from './tls.js';

// Replacing the cluster CA without an outage (`lanctl init --tls --rotate-ca`, then `--renew`, then
// `--finish-rotation`). The peer links trust every CA in cluster.tls.ca (tls.ts), so the rotation is
// three rounds of "copy, restart the members one at a time", each keeping the quorum:
//   1. rotate: a new CA; ca.pem holds the new CA's certificate first, then the old one's. Members
//      restarted with it trust both and still present certificates of the old CA.
//   2. renew: member certificates signed by the new CA (openssl signs with ca.key and the first
//      certificate of ca.pem). A member with a new certificate is trusted by those that have the
//      bundle; one with an old certificate still is too.
//   3. finish: ca.pem holds the new CA alone, the old key is deleted. Refused while a member's
//      certificate in the directory is not the new CA's.
// Every file is written beside the old one and renamed over it: a failure leaves the old set whole.

export type RotationResult = { ok: true; lines: string[] } | { ok: false; error: string };

const PREVIOUS_KEY = 'ca-previous.key';

function signedBy(cert: X509Certificate, ca: X509Certificate): boolean {
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/** Whether the private key in `keyFile` is the key of `cert`. */
function keyOf(keyFile: string, cert: X509Certificate): boolean {
  try {
    const pub = createPublicKey(createPrivateKey(readFileSync(keyFile, 'utf8')));
    return pub.export({ type: 'spki', format: 'der' }).equals(cert.publicKey.export({ type: 'spki', format: 'der' }));
  } catch {
    return false;
  }
}

function readBundle(file: string): X509Certificate[] | string {
  if (!existsSync(file)) return `${file} is not here: rotate on the machine that made the CA (it keeps the key), or give --dir DIR`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  }
  const read = readCaBundle(file, text);
  return read.ok ? read.value : read.message;
}

/** Step 1: a new CA in `dir`, trusted beside the current one. */
export function rotateCa(dir: string, clusterId: string, members: readonly string[], days: number): RotationResult {
  const paths = clusterCertPaths(dir, members);
  const bundle = readBundle(paths.caCert);
  if (typeof bundle === 'string') return { ok: false, error: bundle };
  if (!existsSync(paths.caKey)) return { ok: false, error: `${paths.caKey} is not here: rotate on the machine that made the CA (it keeps the key), or give --dir DIR` };
  if (bundle.length > 1) return { ok: false, error: `${paths.caCert} holds ${bundle.length} CA certificates: a rotation is under way; renew the members (lanctl init --tls --renew), then lanctl init --tls --finish-rotation` };
  const old = bundle[0]!;
  if (!keyOf(paths.caKey, old)) return { ok: false, error: `${paths.caKey} is not the key of the CA in ${paths.caCert}: rotate where the CA was made` };
  try {
    writeP256Key(`${paths.caKey}.new`);
    const fresh = makeCaCert(`${paths.caKey}.new`, `lanha cluster CA ${clusterId} (${new Date().toISOString().slice(0, 10)})`, days);
    writeFileSync(`${paths.caCert}.new`, `${fresh.trim()}\n${readFileSync(paths.caCert, 'utf8').trim()}\n`);
    renameSync(paths.caKey, `${dir}/${PREVIOUS_KEY}`);
    renameSync(`${paths.caKey}.new`, paths.caKey);
    renameSync(`${paths.caCert}.new`, paths.caCert);
  } catch (error) {
    return { ok: false, error: error instanceof OpensslError ? error.message : `could not write in ${dir}: ${(error as Error).message}` };
  }
  return {
    ok: true,
    lines: [
      `made a new cluster CA: its key ${paths.caKey} (mode 0600, stays here; the old key is kept as ${dir}/${PREVIOUS_KEY} until the rotation ends)`,
      `${paths.caCert} now holds the new CA's certificate and then the old one's: members trust both`,
      'the rotation, each step a restart of the members one at a time (systemctl restart lanha, the next once the one before is back in lanctl status):',
      `  1. now: copy ${paths.caCert} to every member, restart them one at a time`,
      '  2. lanctl init --tls --renew: member certificates from the new CA; copy each member its files, restart them one at a time (new pins, if cluster.members pins certSha256)',
      '  3. lanctl init --tls --finish-rotation: the old CA leaves ca.pem; copy it to every member, restart them one at a time',
      'operator certificates (lanctl init --tls --operator) of the old CA work until step 3; make new ones before it',
    ],
  };
}

/** Step 3: the new CA alone, once every member's certificate here is the new CA's. */
export function finishRotation(dir: string, members: readonly string[]): RotationResult {
  const paths = clusterCertPaths(dir, members);
  const bundle = readBundle(paths.caCert);
  if (typeof bundle === 'string') return { ok: false, error: bundle };
  if (bundle.length === 1) return { ok: false, error: `${paths.caCert} holds one CA: no rotation is under way (start one with lanctl init --tls --rotate-ca)` };
  const fresh = bundle[0]!;
  if (!existsSync(paths.caKey) || !keyOf(paths.caKey, fresh)) return { ok: false, error: `${paths.caKey} is not the key of the first CA in ${paths.caCert} (the new one): finish where the rotation began` };
  const stale: string[] = [];
  for (const [name, files] of Object.entries(paths.members)) {
    if (!existsSync(files.cert)) { stale.push(`${name} (no ${files.cert} here)`); continue; }
    try {
      if (!signedBy(new X509Certificate(readFileSync(files.cert)), fresh)) stale.push(name);
    } catch {
      stale.push(`${name} (${files.cert} is not a certificate)`);
    }
  }
  if (stale.length > 0) {
    return { ok: false, error: `not every member has a certificate of the new CA yet: ${stale.join(', ')}; renew them (lanctl init --tls --renew), copy and restart them, then finish` };
  }
  try {
    writeFileSync(`${paths.caCert}.new`, `${fresh.toString().trim()}\n`);
    renameSync(`${paths.caCert}.new`, paths.caCert);
    rmSync(`${dir}/${PREVIOUS_KEY}`, { force: true });
  } catch (error) {
    return { ok: false, error: `could not write in ${dir}: ${(error as Error).message}` };
  }
  return {
    ok: true,
    lines: [
      `${paths.caCert} now holds the new CA alone (${bundle.length - 1} old CA certificate${bundle.length > 2 ? 's' : ''} dropped) and the old CA key is deleted`,
      `copy ${paths.caCert} to every member and restart them one at a time: after that, certificates of the old CA (members or operators) are refused`,
    ],
  };
}
