// Signals that arrive while `lanctl serve` starts. Until the daemon's own handlers are in place
// Node's defaults apply, and they end the process: a SIGHUP (`systemctl reload`, a log rotation's
// kill -HUP) during a start that reads a large config or replays a long log ended lanha, and
// systemd counts a SIGHUP death as a clean stop, so Restart=on-failure left it down. These
// handlers, installed first thing, only remember what came; the daemon acts on it once it runs.

export interface EarlySignals {
  /** The first SIGTERM or SIGINT received while starting, or null. */
  readonly stop: NodeJS.Signals | null;
  /** Whether a SIGHUP came while starting. */
  readonly hangup: boolean;
  /** Removes these handlers (the daemon's own are installed first, so no signal falls between). */
  release(): void;
}

/** Catches SIGTERM, SIGINT and SIGHUP until release(); what came is read from the result. */
export function holdEarlySignals(): EarlySignals {
  let stop: NodeJS.Signals | null = null;
  let hangup = false;
  const onStop = (signal: NodeJS.Signals): void => { stop ??= signal; };
  const onHangup = (): void => { hangup = true; };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onHangup);
  return {
    get stop() { return stop; },
    get hangup() { return hangup; },
    release() {
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      process.off('SIGHUP', onHangup);
    },
  };
}
