import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LANCTL } from './paths.js';
import { stopChild } from './netns.js';

// Runs `lanctl` (the built CLI) and `lanctl serve` as real processes for end-to-end tests.

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function runLanctl(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LANCTL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }); });
  });
}

/** A scratch directory with a config file; `yaml` may use {{dir}} for the directory's path. */
export function scratchConfig(yaml: string): { dir: string; file: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-test-'));
  const file = join(dir, 'lanha.yaml');
  writeFileSync(file, yaml.replaceAll('{{dir}}', dir));
  return { dir, file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ServedDaemon {
  child: ChildProcess;
  logs: () => string;
  /** Sends SIGTERM and resolves with the exit code and how long the exit took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** Starts `lanctl serve` and resolves once its log says it is ready. */
export function serveDaemon(configFile: string, options: { timeoutMs?: number; command?: readonly string[] } = {}): Promise<ServedDaemon> {
  const command = options.command ?? [process.execPath, LANCTL];
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
      reject(new Error(`daemon not ready within ${options.timeoutMs ?? 15_000} ms; output:\n${out}`));
    }, options.timeoutMs ?? 15_000);
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
