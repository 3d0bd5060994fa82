import { spawn } from 'node:child_process';
import type { Logger } from './log.js';

// systemd readiness and watchdog. Node has no AF_UNIX datagram sockets, so the messages go through
// a `systemd-notify` child (the unit sets NotifyAccess=all). Without NOTIFY_SOCKET this is a no-op.

function notify(args: string[], log: Logger): void {
  const child = spawn('systemd-notify', args, { stdio: 'ignore' });
  child.on('error', (error) => log.warn({ event: 'systemd.notify_failed', err: error }, 'systemd-notify could not run'));
}

export interface SystemdHandle {
  stopping(): void;
}

export function systemdReady(log: Logger, env: NodeJS.ProcessEnv = process.env): SystemdHandle {
  if (!env['NOTIFY_SOCKET']) return { stopping: () => undefined };
  notify(['--ready', `--status=serving`], log);
  let timer: NodeJS.Timeout | undefined;
  const usec = Number(env['WATCHDOG_USEC'] ?? '0');
  if (Number.isFinite(usec) && usec > 0) {
    const everyMs = Math.max(100, Math.floor(usec / 1000 / 2));
    timer = setInterval(() => notify(['WATCHDOG=1'], log), everyMs);
    timer.unref();
    log.info({ event: 'systemd.watchdog', everyMs }, 'systemd watchdog pings on');
  }
  return {
    stopping: () => {
      if (timer) clearInterval(timer);
      notify(['--stopping'], log);
    },
  };
}

/**
 * What a program the site names (a power command) must not inherit from the daemon: with
 * NotifyAccess=all (above) it could tell systemd that lanha is ready, stopping or alive (a
 * WATCHDOG=1 that keeps a hung daemon from being restarted), or name another main PID.
 */
const SYSTEMD_VARIABLES = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'];

/** `env` without systemd's variables for this daemon (SYSTEMD_VARIABLES). */
export function withoutSystemd(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of SYSTEMD_VARIABLES) delete out[name];
  return out;
}
