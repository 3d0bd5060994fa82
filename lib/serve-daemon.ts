import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild } from './netns.js';

// Runs `lanctl serve` as a child process and waits for its ready line: the lab members of
// `lanctl demo` and the end-to-end tests.

/** The built CLI next to this file (dist/bin/lanctl.js). */
export const LANCTL_JS = fileURLToPath(new URL('../bin/lanctl.js', import.meta.url));

export interface ServedDaemon {
  child: ChildProcess;
  logs: () => string;
  /** Sends SIGTERM and resolves with the exit code and how long the exit took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** Starts `lanctl serve` and resolves once its log says it is ready. */
export function serveDaemon(configFile: string, options: { timeoutMs?: number; command?: readonly string[] } = {}): Promise<ServedDaemon> {
  const command = options.command ?? [process.execPath, LANCTL_JS];
  const child = spawn(command[0]!, [...command.slice(1), 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const served: ServedDaemon = {
    child,
    logs: () => out,
    stop: (signal = 'SIGTERM') => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) { resolve({ code: child.exitCode, signal: child.signalCode, ms: 0 }); return; }
      const started = performance.now();
      child.once('exit', (code, sig) => resolve({ code, signal: sig, ms: performance.now() - started }));
      child.kill(signal);
    }),
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stopChild(child);
      reject(new Error(`daemon not ready within ${options.timeoutMs ?? 60_000} ms; output:\n${out}`));
    }, options.timeoutMs ?? 60_000);
    const onData = (): void => {
      if (out.includes('"event":"daemon.ready"')) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(served);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${code}) before it was ready; output:\n${out}`));
    });
  });
}
