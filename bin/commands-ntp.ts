import { ExitCode, LanhaError } from '../lib/errors.js';
import { callDaemonOk } from '../lib/control-client.js';
import { resolveSocket, type CliIo, type ParsedArgs } from './cli.js';
import { formatNtpStatus, type NtpStatusBody } from '../services/ntp/status-text.js';

// lanctl ntp status: whether this node serves synchronised time, and its offset to each source
// (the same lines `lanctl status` prints, plus the counters; --json for scripts).

export async function ntpStatusRun(args: ParsedArgs, io: CliIo): Promise<number> {
  let body: NtpStatusBody & { counters?: Record<string, number> };
  try {
    body = await callDaemonOk(resolveSocket(args.values), 'GET', '/v1/ntp') as typeof body;
  } catch (error) {
    if (error instanceof LanhaError && error.code === 'not-found') {
      throw new LanhaError('not-found', 'NTP is not enabled on this node (no `ntp:` block in its config)', ExitCode.failure);
    }
    throw error;
  }
  if (args.values['json'] === true) {
    io.out(JSON.stringify(body, null, 2) + '\n');
    return ExitCode.ok;
  }
  io.out(formatNtpStatus(body));
  const counters = Object.entries(body.counters ?? {});
  if (counters.length > 0) io.out('\n' + counters.map(([k, v]) => `${k} ${v}`).join(', ') + '\n');
  return ExitCode.ok;
}
