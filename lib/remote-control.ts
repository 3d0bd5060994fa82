import type { X509Certificate } from 'node:crypto';
import { parseIpv4Endpoint } from './ipv4.js';

// The remote control listener (`control:` block): the same control API as the unix socket, over
// HTTPS with mutual TLS, for `lanctl --remote`. The daemon's side of the handshake is its member
// certificate from cluster.tls; a client must present an operator certificate signed by the same
// cluster CA (`lanctl init --tls --operator NAME`). What is checked here, beyond the chain TLS
// checks: the certificate is an operator's (OU), and its name is one the config allows. Pure: the
// sockets are lib/control-server.ts, the config schema lib/control-config.ts.

/** The organizational unit that marks an operator's certificate (member certificates carry none). */
export const OPERATOR_OU = 'lanha operator';
export const DEFAULT_REMOTE_PORT = 7443;
/** An operator's name: the certificate's CN, the name in the daemon's log lines for what it did. */
export const OPERATOR_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i;

export interface RemoteListen { host: string; port: number }

/** "10.0.0.2:7443" or "10.0.0.2" (port 7443) -> {host, port}; null when it is neither. */
export function parseRemoteListen(text: string): RemoteListen | null {
  const e = parseIpv4Endpoint(text, DEFAULT_REMOTE_PORT);
  return e === null ? null : { host: e.address, port: e.port };
}

/** One attribute of a certificate subject ("CN", "OU"), as Node's X509Certificate.subject lists it. */
function subjectValues(subject: string, key: string): string[] {
  return subject.split('\n').filter((line) => line.startsWith(`${key}=`)).map((line) => line.slice(key.length + 1));
}

export type OperatorCheck = { ok: true; operator: string } | { ok: false; why: string };

/**
 * Whether a client certificate (its chain already verified against the cluster CA by TLS) is an
 * operator's the config allows. A member's certificate is refused: every member holds its key.
 */
export function checkOperator(cert: Pick<X509Certificate, 'subject'> | undefined, operators: readonly string[] | undefined): OperatorCheck {
  if (cert === undefined) return { ok: false, why: 'no client certificate was presented (make one with `lanctl init --tls --operator NAME`)' };
  const units = subjectValues(cert.subject, 'OU');
  const names = subjectValues(cert.subject, 'CN');
  const name = names[0] ?? '';
  if (!units.includes(OPERATOR_OU) || names.length !== 1) {
    return { ok: false, why: `the certificate of "${name}" is not an operator's (a member's certificate is not one; make an operator's with \`lanctl init --tls --operator NAME\`)` };
  }
  if (!OPERATOR_NAME.test(name)) return { ok: false, why: `the operator name ${JSON.stringify(name.slice(0, 80))} is not a name lanha issues` };
  if (operators !== undefined && !operators.includes(name)) return { ok: false, why: `operator "${name}" is not in control.operators on this node` };
  return { ok: true, operator: name };
}
