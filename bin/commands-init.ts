import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ExitCode, LanhaError } from '../lib/errors.js';
import { DEFAULT_KEY_FILE, DEFAULT_TLS_DIR, type CliIo, type ParsedArgs } from './cli.js';
import type { LanhaConfig } from '../config/index.js';

// `lanctl init`: makes the cluster's shared key, the secret members prove themselves with
// (cluster.keyFile). Run it once, on one machine, then copy the same file to every member.
// `lanctl init --tls`: makes the cluster CA and one key + certificate per member for mutual TLS
// (cluster.tls) instead; the CA key stays on the machine it was made on.

const KEY_BYTES = 32;
/** Validity of what `init --tls` makes, in days: the CA ten years, member certificates five. */
const CA_DAYS = 3650;
const MEMBER_DAYS = 1825;

export async function initRun(args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positionals.length > 0) throw new LanhaError('usage', `unexpected argument "${args.positionals[0]}"; give the key file with --key FILE`, ExitCode.usage);
  let config: LanhaConfig | undefined;
  const configFile = args.values['config'];
  if (typeof configFile === 'string') {
    const { ConfigError, loadConfig } = await import('../config/index.js');
    try {
      config = loadConfig(configFile);
    } catch (error) {
      if (error instanceof ConfigError) {
        io.err(`${error.message}\n`);
        return ExitCode.config;
      }
      throw error;
    }
  }
  if (args.values['operator'] !== undefined || args.values['out'] !== undefined) return initOperator(config, args.values, io);
  if (args.values['tls'] === true) return initTls(config, args.values, io);
  if (args.values['dir'] !== undefined) throw new LanhaError('usage', '--dir is for --tls (the key file is given with --key FILE)', ExitCode.usage);
  const keyFromConfig = config?.cluster?.keyFile;
  const members = (config?.cluster?.members ?? []).filter((m) => m.name !== config?.node.name);
  const file = typeof args.values['key'] === 'string' ? args.values['key'] : keyFromConfig ?? DEFAULT_KEY_FILE;
  if (existsSync(file) && args.values['force'] !== true) {
    throw new LanhaError('exists',
      `${file} exists: it is the cluster's shared key, so copy it to the other members rather than making a new one (or replace it with --force, then copy it to every member)`,
      ExitCode.failure);
  }
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
    writeFileSync(file, `${randomBytes(KEY_BYTES).toString('hex')}\n`, { mode: 0o600 });
    chmodSync(file, 0o600); // an existing file keeps its mode through writeFileSync
    (await import('../cluster/raft/transport.js')).readKeyFile(file);
  } catch (error) {
    throw new LanhaError('io', `could not write ${file}: ${(error as Error).message} (run as root for /etc/lanha, or give --key FILE)`, ExitCode.failure);
  }
  io.out(`wrote ${file} (${KEY_BYTES} random bytes, hex, mode 0600)\n`);
  io.out(members.length === 0
    ? 'copy the same file, mode 0600, to every cluster member (cluster.keyFile in their configs)\n'
    : `copy it to the other members, keeping mode 0600:\n${members.map((m) => `  scp -p ${file} root@${m.address}:${file}    # ${m.name}\n`).join('')}`);
  return ExitCode.ok;
}

type InitValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

/** `init --tls`: the CA (its key stays here) and a key + certificate per member; prints what to copy where. */
async function initTls(config: LanhaConfig | undefined, values: InitValues, io: CliIo): Promise<number> {
  if (values['key'] !== undefined) throw new LanhaError('usage', '--key is for the shared key; with --tls give the directory with --dir DIR', ExitCode.usage);
  const cluster = config?.cluster;
  if (config === undefined || cluster === undefined) {
    throw new LanhaError('usage', 'init --tls needs --config FILE with a cluster: block: its members are who gets a certificate', ExitCode.usage);
  }
  const dir = typeof values['dir'] === 'string' ? values['dir'] : cluster.tls !== undefined ? dirname(cluster.tls.ca) : DEFAULT_TLS_DIR;
  const { OpensslError, clusterCertPaths, makeClusterCerts, makeMemberCerts } = await import('../cluster/raft/tls-certs.js');
  const paths = clusterCertPaths(dir, cluster.members.map((m) => m.name));
  if (values['rotate-ca'] === true || values['finish-rotation'] === true) {
    const asked = ['force', 'renew', 'member', 'rotate-ca', 'finish-rotation'].filter((k) => values[k] !== undefined);
    if (asked.length > 1) throw new LanhaError('usage', `--${asked.join(' and --')} do not go together: a CA rotation is three runs (--rotate-ca, --renew, --finish-rotation)`, ExitCode.usage);
    const { rotateCa, finishRotation } = await import('../cluster/raft/tls-rotate.js');
    const members = cluster.members.map((m) => m.name);
    const result = values['rotate-ca'] === true ? rotateCa(dir, cluster.id, members, CA_DAYS) : finishRotation(dir, members);
    if (!result.ok) throw new LanhaError('conflict', result.error, ExitCode.failure);
    for (const line of result.lines) io.out(`${line}\n`);
    const others = cluster.members.filter((m) => m.name !== config.node.name);
    if (others.length > 0) io.out(`copy ${paths.caCert} to the other members (make ${dir} there first):\n${others.map((m) => `  scp -p ${paths.caCert} root@${m.address}:${dir}/    # ${m.name}\n`).join('')}`);
    return ExitCode.ok;
  }
  const plan = values['renew'] === true ? renewPlan(paths, cluster.members.map((m) => m.name), values) : tlsPlan(paths, values['force'] === true);
  let made: ReturnType<typeof makeClusterCerts>;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    made = plan.kind === 'all'
      ? makeClusterCerts(dir, cluster.id, cluster.members, { ca: CA_DAYS, member: MEMBER_DAYS })
      : makeMemberCerts(dir, cluster.members.filter((m) => plan.members.includes(m.name)), MEMBER_DAYS, { replace: plan.kind === 'renew' });
  } catch (error) {
    const why = error instanceof OpensslError ? error.message : `could not write in ${dir}: ${(error as Error).message} (run as root for /etc/lanha, or give --dir DIR)`;
    throw new LanhaError('io', why, ExitCode.failure);
  }
  const { X509Certificate } = await import('node:crypto');
  const { certPin } = await import('../cluster/raft/tls.js');
  if (plan.kind === 'all') {
    io.out(`wrote the cluster CA ${made.caCert} (valid ${CA_DAYS} days) and its key ${made.caKey} (mode 0600: it stays on this machine, copy it nowhere)\n`);
    io.out(`and per member an ECDSA P-256 key (mode 0600) and certificate (valid ${MEMBER_DAYS} days, DNS SAN = member name):\n`);
  } else if (plan.kind === 'renew') {
    io.out(`renewed ${plan.members.join(', ')} with the existing CA ${made.caCert}: a new ECDSA P-256 key (mode 0600) and certificate (valid ${MEMBER_DAYS} days) each; the CA and the other members' files are unchanged:\n`);
  } else {
    io.out(`added ${plan.members.join(', ')} with the existing CA ${made.caCert}: an ECDSA P-256 key (mode 0600) and certificate (valid ${MEMBER_DAYS} days, DNS SAN = member name); the others' files are unchanged:\n`);
  }
  for (const m of cluster.members.filter((x) => made.members[x.name] !== undefined)) {
    const files = made.members[m.name]!;
    const pin = certPin(new X509Certificate(readFileSync(files.cert)));
    io.out(`  ${m.name}: ${files.cert} ${files.key}  certSha256: ${pin}\n`);
  }
  io.out(`each member's config: cluster.tls: { ca: ${made.caCert}, cert: ${join(dir, '<member>.pem')}, key: ${join(dir, '<member>.key')} } (no keyFile); the certSha256 lines above may go under cluster.members as pins\n`);
  const others = cluster.members.filter((m) => m.name !== config.node.name && made.members[m.name] !== undefined);
  if (others.length > 0) {
    io.out(`copy each member its files, keeping mode 0600 on the key (make ${dir} there first):\n${others.map((m) => {
      const f = made.members[m.name]!;
      return `  scp -p ${made.caCert} ${f.cert} ${f.key} root@${m.address}:${dir}/    # ${m.name}\n`;
    }).join('')}`);
  }
  if (plan.kind === 'renew') {
    io.out('then restart the renewed members one at a time (systemctl restart lanha), each once the one before is back in lanctl status: the others keep the quorum, and old and new certificates are signed by the same CA\n');
    if (cluster.members.some((m) => m.certSha256 !== undefined && plan.members.includes(m.name))) {
      io.out('WARNING: cluster.members pins certSha256 for a renewed member: put the new pins above in every member\'s config before restarting, or its links are refused\n');
    }
  }
  return ExitCode.ok;
}

/** `init --tls --renew`: the members to renew (all, or the --member ones), each in the config; the CA and its key must be here. */
function renewPlan(paths: import('../cluster/raft/tls-certs.js').ClusterCertFiles, members: readonly string[], values: InitValues): { kind: 'renew'; members: string[] } {
  if (values['force'] === true) throw new LanhaError('usage', '--renew keeps the CA and --force makes a new one: give one of them', ExitCode.usage);
  for (const f of [paths.caCert, paths.caKey]) {
    if (!existsSync(f)) throw new LanhaError('exists', `${f} is not here: renew on the machine that made the CA (it keeps the key), or give --dir DIR`, ExitCode.failure);
  }
  const asked = Array.isArray(values['member']) ? values['member'].map(String) : [];
  const unknown = asked.filter((m) => !members.includes(m));
  if (unknown.length > 0) throw new LanhaError('usage', `--member ${unknown.join(', ')}: not in cluster.members (${members.join(', ')})`, ExitCode.usage);
  return { kind: 'renew', members: asked.length > 0 ? [...new Set(asked)] : [...members] };
}

/** Validity of an operator's certificate, in days: a year (make a new one with the CA to renew it). */
const OPERATOR_DAYS = 365;

/** `init --tls --operator NAME --out DIR`: an operator's client certificate for `lanctl --remote`, with the CA's certificate beside it. */
async function initOperator(config: LanhaConfig | undefined, values: InitValues, io: CliIo): Promise<number> {
  const name = values['operator'];
  const out = values['out'];
  if (values['tls'] !== true || typeof name !== 'string' || typeof out !== 'string') {
    throw new LanhaError('usage', 'an operator certificate is made with: lanctl init --tls --operator NAME --out DIR [--config FILE | --dir DIR]', ExitCode.usage);
  }
  const { OPERATOR_NAME } = await import('../lib/remote-control.js');
  if (!OPERATOR_NAME.test(name)) throw new LanhaError('usage', `--operator ${JSON.stringify(name)} is not an operator name (letters, digits, ".", "_", "-"; up to 63)`, ExitCode.usage);
  const dir = typeof values['dir'] === 'string' ? values['dir'] : config?.cluster?.tls !== undefined ? dirname(config.cluster.tls.ca) : DEFAULT_TLS_DIR;
  const { OpensslError, clusterCertPaths, makeOperatorCert, writeP256Key } = await import('../cluster/raft/tls-certs.js');
  const ca = clusterCertPaths(dir, []);
  for (const f of [ca.caCert, ca.caKey]) {
    if (!existsSync(f)) throw new LanhaError('usage', `${f} is not here: operator certificates are made where the cluster CA and its key are (the machine that ran lanctl init --tls; or give --dir DIR)`, ExitCode.failure);
  }
  const files = { ca: join(out, 'ca.pem'), cert: join(out, 'operator.pem'), key: join(out, 'operator.key') };
  const existing = Object.values(files).filter((f) => existsSync(f));
  if (existing.length > 0 && values['force'] !== true) {
    throw new LanhaError('exists', `${existing.join(', ')} ${existing.length === 1 ? 'exists' : 'exist'}: give another --out DIR, or replace ${existing.length === 1 ? 'it' : 'them'} with --force`, ExitCode.failure);
  }
  try {
    mkdirSync(out, { recursive: true, mode: 0o700 });
    // Made beside the old pair (--force) and renamed over it: a failure leaves no key without its certificate.
    writeP256Key(`${files.key}.new`);
    chmodSync(`${files.key}.new`, 0o600);
    writeFileSync(`${files.cert}.new`, makeOperatorCert({ name, keyFile: `${files.key}.new`, caCertFile: ca.caCert, caKeyFile: ca.caKey, days: OPERATOR_DAYS }));
    renameSync(`${files.key}.new`, files.key);
    renameSync(`${files.cert}.new`, files.cert);
    writeFileSync(files.ca, readFileSync(ca.caCert));
  } catch (error) {
    const why = error instanceof OpensslError ? error.message : `could not write in ${out}: ${(error as Error).message}`;
    throw new LanhaError('io', why, ExitCode.failure);
  }
  io.out(`wrote the operator certificate of "${name}" (valid ${OPERATOR_DAYS} days) ${files.cert}, its key ${files.key} (mode 0600) and the cluster CA ${files.ca}\n`);
  io.out(`copy ${out} to the operator's machine as ~/.config/lanha (or give --tls-dir DIR), then: lanctl status --remote <member address>\n`);
  io.out('the daemons it may talk to need a control: { listen: "<their address>:7443" } block (control.operators may limit who)\n');
  return ExitCode.ok;
}

/**
 * What `init --tls` makes: everything (nothing there yet, or --force), or, with the CA and its key
 * here, only the members that have neither key nor certificate yet (a member added to the config).
 * Anything else is refused, naming the files: replacing needs --force, and a member's files are
 * never mixed from two CAs or made half.
 */
function tlsPlan(paths: import('../cluster/raft/tls-certs.js').ClusterCertFiles, force: boolean): { kind: 'all' } | { kind: 'members'; members: string[] } {
  if (force) return { kind: 'all' };
  const has = (f: string): boolean => existsSync(f);
  const memberFiles = Object.entries(paths.members);
  const caHere = has(paths.caCert) && has(paths.caKey);
  const missing = memberFiles.filter(([, f]) => !has(f.cert) && !has(f.key)).map(([name]) => name);
  const half = memberFiles.filter(([, f]) => has(f.cert) !== has(f.key)).map(([, f]) => (has(f.cert) ? f.key : f.cert));
  if (half.length > 0) {
    throw new LanhaError('exists', `${half.join(', ')} ${half.length === 1 ? 'is' : 'are'} missing beside the other file of that member: remove the member's other file to make both anew, or use --force for all`, ExitCode.failure);
  }
  if (caHere && missing.length > 0) return { kind: 'members', members: missing };
  const existing = [paths.caCert, paths.caKey, ...memberFiles.flatMap(([, f]) => [f.cert, f.key])].filter(has);
  if (existing.length === 0) return { kind: 'all' };
  if (has(paths.caCert) && !has(paths.caKey) && missing.length > 0) {
    throw new LanhaError('exists', `${paths.caCert} is here but not its key ${paths.caKey}: add members on the machine that made the CA (it keeps the key), or make all anew with --force`, ExitCode.failure);
  }
  throw new LanhaError('exists',
    `${existing.join(', ')} ${existing.length === 1 ? 'exists' : 'exist'}: the cluster's CA and certificates are made once; a member added to the config gets its own with the CA here (replace them all with --force, then copy the new ones to every member)`,
    ExitCode.failure);
}
