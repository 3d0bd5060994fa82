import { execFile, spawn } from 'node:child_process';
import type { Lab } from '../support/netns.js';

// Who holds a floating address, sampled every 50 ms: each member's kernel is watched with `ip
// monitor address` (every add, delete and lifetime expiry, as it happens) and a sample of the
// holders is taken from that state every 50 ms, far cheaper than running `ip addr show` on every
// member every 50 ms on a busy test machine. Used for lanha's VIP (vip-lab.ts) and for
// keepalived's in the same lab (bench/keepalived-lab.ts), so both count two holders the same way.

export const SAMPLE_EVERY_MS = 50;

export interface Sample {
  at: number;
  /** Names of the members whose kernel holds the address at this sample. */
  holders: string[];
}

export interface Watched {
  name: string;
  ns: string;
  ifname: string;
}

export interface HolderSampler {
  readonly samples: Sample[];
  holds(member: Watched): Promise<boolean>;
  /** Resolves with the first sample time at which `pred` holds, or rejects after timeoutMs. */
  waitSample(pred: (s: Sample) => boolean, timeoutMs: number, after?: number): Promise<Sample>;
  /** Waits until one member alone has held the address in every sample for `steadyMs`; returns its name. */
  waitSteady(steadyMs: number, timeoutMs: number): Promise<string>;
  stop(): void;
}

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: 5000 }, (error, stdout) => resolve({ code: error ? 1 : 0, stdout }));
  });
}

/** Milliseconds during which two or more members held the address, between from and to (performance.now()). */
export function twoHolderMs(samples: readonly Sample[], from: number, to: number): number {
  return samples.filter((s) => s.at >= from && s.at <= to && s.holders.length > 1).length * SAMPLE_EVERY_MS;
}

export async function startHolderSampler(lab: Lab, members: readonly Watched[], address: string): Promise<HolderSampler> {
  const holds = async (m: Watched): Promise<boolean> => {
    const r = await run('ip', ['-n', m.ns, '-4', '-o', 'addr', 'show', 'dev', m.ifname]);
    return r.stdout.includes(` ${address}/`);
  };
  const holding = new Map<string, boolean>();
  const monitors = members.map((m) => {
    const child = lab.track(spawn('ip', ['-n', m.ns, '-o', 'monitor', 'address', 'dev', m.ifname], { stdio: ['ignore', 'pipe', 'ignore'] }));
    let rest = '';
    child.stdout!.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.includes(` ${address}/`)) continue;
        holding.set(m.name, !line.startsWith('Deleted'));
      }
    });
    return child;
  });
  for (const m of members) if (!holding.has(m.name)) holding.set(m.name, await holds(m));
  const samples: Sample[] = [];
  const take = (): void => {
    samples.push({ at: performance.now(), holders: members.filter((m) => holding.get(m.name) === true).map((m) => m.name) });
  };
  take();
  const timer = setInterval(take, SAMPLE_EVERY_MS);
  return {
    samples,
    holds,
    async waitSample(pred, timeoutMs, after = -Infinity) {
      const start = performance.now();
      for (;;) {
        const hit = samples.find((s) => s.at >= after && pred(s));
        if (hit) return hit;
        if (performance.now() - start > timeoutMs) {
          const recent = samples.slice(-5).map((s) => `${Math.round(s.at)}:[${s.holders.join(',')}]`).join(' ');
          throw new Error(`no matching sample of ${address} within ${timeoutMs} ms (recent: ${recent})`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async waitSteady(steadyMs, timeoutMs) {
      const start = performance.now();
      for (;;) {
        const last = samples[samples.length - 1];
        if (last !== undefined && last.holders.length === 1) {
          let i = samples.length - 1;
          while (i > 0 && samples[i - 1]!.holders.length === 1 && samples[i - 1]!.holders[0] === last.holders[0]) i--;
          if (last.at - samples[i]!.at >= steadyMs) return last.holders[0]!;
        }
        if (performance.now() - start > timeoutMs) throw new Error(`no steady holder of ${address} for ${steadyMs} ms within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop() {
      clearInterval(timer);
      for (const m of monitors) m.kill('SIGTERM');
    },
  };
}
