// The CLI table of README.md is the contract, and this test holds every command to it, read from
// the table itself (a row added there is checked with no edit here): for each command line of the
// table, `--help` exits 0 and mentions each flag the row documents; an unknown flag exits 2 naming
// it and the --help to run; a required argument left out exits 2 naming it; with no daemon, a
// command whose row promises "3 daemon not running" exits 3 and says how to start one, and its
// --json form prints nothing that is not JSON. `lanhad` (the daemon under its own name) likewise.
// Only what needs no daemon or a stopped one: nothing here starts a service or writes outside its
// scratch directory.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LANCTL, repoPath } from '../support/paths.js';
import { runCli } from '../../bin/cli.js';
import { commands as cliCommands } from '../../bin/commands.js';

// About 90 CLI processes, two at a time, on a loaded machine.
t.setTimeout(900_000);

interface Run { code: number; stdout: string; stderr: string }

const LANHAD = LANCTL.replace(/lanctl\.js$/, 'lanhad.js');
const scratch = mkdtempSync(join(tmpdir(), 'lanha-cli-contract-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const NO_SOCKET = join(scratch, 'no-daemon.sock');
// A config whose daemon is not running: its socket is not there.
const CONFIG = join(scratch, 'lanha.yaml');
writeFileSync(CONFIG, `node:\n  name: t1\n  stateDir: ${join(scratch, 'state')}\n  controlSocket: ${NO_SOCKET}\n`);
const FILE = join(scratch, 'hosts');
writeFileSync(FILE, 'dhcp-host=52:54:00:12:34:56,10.0.0.5,n1\n');

/** One command line of the table: its usage as the row writes it, and the row's exit codes. */
interface Documented { usage: string; words: string[]; exitCodes: string; cell: string }

/** Every `lanctl ...` usage in the first cell of each CLI table row, with that row's exit codes. */
function documented(): Documented[] {
  const readme = readFileSync(repoPath('README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('\n## CLI\n'));
  const rows = table.split('\n').filter((l) => l.startsWith('| `lanctl '));
  const out: Documented[] = [];
  for (const row of rows) {
    const cells = row.replaceAll('\\|', '\u0000').split('|').map((c) => c.replaceAll('\u0000', '|').trim());
    let exitCodes = cells[cells.length - 2]!;
    // "as above", "as `deploy rootfs`": that row's codes.
    const as = /^as (above|`([^`]+)`)/.exec(exitCodes);
    if (as !== null) exitCodes = (as[2] === undefined ? out.at(-1) : out.find((d) => d.usage.startsWith(`lanctl ${as[2]}`)))?.exitCodes ?? exitCodes;
    for (const m of cells[1]!.matchAll(/`(lanctl [^`]+)`/g)) {
      const usage = m[1]!;
      out.push({ usage, words: usage.split(/\s+/).slice(1), exitCodes, cell: cells[1]! });
    }
  }
  return out;
}

/** The command's path: the lower-case words before its first argument or option. */
function pathOf(words: readonly string[]): string[] {
  const path: string[] = [];
  for (const w of words) {
    if (!/^[a-z][a-z-]*$/.test(w)) break;
    path.push(w);
  }
  return path;
}

/** Every --flag the usage names. */
function flagsOf(usage: string): string[] {
  return [...new Set([...usage.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]))];
}

/** A value for each placeholder a usage may name: a new one fails the test until it has one. */
const SAMPLE: Record<string, string> = {
  NAME: 'n1', NODE: 'n1', NODES: 'n1', MAC: '52:54:00:12:34:56', M: '52:54:00:12:34:56', IP: '10.0.0.5', A: '10.0.0.5',
  GROUP: 'g1', G: 'g1', P: 'p1', JOB: 'j1', GEN: 'a'.repeat(64), TYPE: 'A', DATA: '10.0.0.1', CMD: 'true', FILE, DIR: scratch,
  N: '1', S: 'x', HEX: '01', D: '5m', on: 'on',
};

/** Top-level tokens of a usage after its path, optional [...] groups left out, a (... | ...) group as its first choice. */
function required(words: readonly string[]): string[] {
  const tokens: string[] = [];
  let depth = 0;
  let choice = 0; // inside ( ... ): 1 while on its first alternative, 2 after
  for (const w of words.slice(pathOf(words).length)) {
    let word = w;
    if (depth === 0 && word.startsWith('(')) { choice = 1; word = word.slice(1); }
    const opens = (word.match(/\[/g) ?? []).length;
    const closes = (word.match(/\]/g) ?? []).length;
    const top = depth === 0 && !word.startsWith('[');
    depth += opens - closes;
    if (word === '|' && choice === 1) { choice = 2; continue; }
    const ended = word.endsWith(')');
    if (ended) word = word.slice(0, -1);
    if (top && choice !== 2 && word !== '' && word !== '|') tokens.push(word.replace(/\[.*$/, ''));
    if (ended) choice = 0;
  }
  return tokens;
}

/** The argv that calls a usage with every required argument and option filled in, and where each is. */
function minimalArgv(d: Documented): { argv: string[]; positionals: Array<{ name: string; at: number }>; options: string[] } {
  const argv = pathOf(d.words);
  const positionals: Array<{ name: string; at: number }> = [];
  const options: string[] = [];
  const tokens = required(d.words);
  const value = (placeholder: string): string => {
    const first = placeholder.replace(/\.\.\.$/, '').split('|')[0]!;
    const v = SAMPLE[first];
    if (v === undefined) throw new Error(`${d.usage}: no sample value for ${placeholder} (add one to SAMPLE)`);
    return v;
  };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.startsWith('--')) {
      const next = tokens[i + 1];
      if (next !== undefined && !next.startsWith('-') && /^[A-Z]/.test(next)) { argv.push(token, value(next)); options.push(token); i++; } else argv.push(token);
    } else {
      positionals.push({ name: token, at: argv.length });
      argv.push(value(token));
    }
  }
  return { argv, positionals, options };
}

/** The CLI run in this process (what `lanctl` runs, less the process): for what never reaches a command's own code. */
async function inProcess(argv: readonly string[]): Promise<Run> {
  let stdout = '', stderr = '';
  const code = await runCli('lanctl', argv, cliCommands, 'test', { out: (s) => { stdout += s; }, err: (s) => { stderr += s; } });
  return { code, stdout, stderr };
}

function run(script: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: scratch };
    delete env['LANHA_REMOTE'];
    delete env['LANHA_TLS_DIR'];
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: scratch });
    let stdout = '', stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    // A hang guard only.
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }); });
  });
}

/** Runs at most two CLI processes at once (the machine is shared). */
async function inTurn<T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all([0, 1].map(async () => { for (let i = next++; i < items.length; i = next++) results[i] = await work(items[i]!); }));
  return results;
}

const commands = documented();
const paths = new Map<string, Documented[]>();
for (const d of commands) {
  const key = pathOf(d.words).join(' ');
  paths.set(key, [...(paths.get(key) ?? []), d]);
}

// Each command's --help, asked once: the other checks give --config only to a command that takes it.
const helps = new Map<string, Run>();
for (const k of paths.keys()) helps.set(k, await inProcess([...k.split(' '), '--help']));
/** The help of the command `argv` runs: the longest command path it starts with. */
const helpOf = (argv: readonly string[]): string => {
  const key = [...helps.keys()].filter((k) => k.split(' ').every((w, i) => argv[i] === w)).sort((a, b) => b.length - a.length)[0];
  return key === undefined ? '' : helps.get(key)!.stdout;
};
const withConfig = (argv: readonly string[]): string[] => (helpOf(argv).includes('--config') ? [...argv, '--config', CONFIG] : [...argv]);
/** What a command said, less the usage line it prints after a usage error (which names every argument). */
const said = (r: Run): string => r.stderr.split('\n').filter((l) => !l.startsWith('Usage: ')).join('\n');

t.test('the table is read: its commands, each with exit codes', async (t) => {
  t.ok(commands.length >= 40, `${commands.length} command lines in the README's CLI table`);
  for (const p of ['serve', 'status', 'leases release', 'nodes power', 'deploy rootfs', 'internal ssh-gate']) t.ok(paths.has(p), `${p} among them`);
  t.ok(commands.every((d) => /^0 /.test(d.exitCodes)), 'every row says its exit codes');
});

t.test('--help: exit 0, and every flag its rows document is in it', async (t) => {
  for (const [k, r] of helps) {
    t.equal(r.code, 0, `lanctl ${k} --help: exit 0 (${r.stderr.trim()})`);
    const missing = paths.get(k)!.flatMap((d) => flagsOf(d.usage)).filter((f, j, all) => all.indexOf(f) === j && !r.stdout.includes(f));
    t.same(missing, [], `lanctl ${k} --help mentions ${[...new Set(paths.get(k)!.flatMap((d) => flagsOf(d.usage)))].join(' ') || 'no flags'}`);
  }
});

t.test('an unknown flag: exit 2, the flag named, and the --help to run', async (t) => {
  for (const k of paths.keys()) {
    const r = await inProcess([...minimalArgv(paths.get(k)![0]!).argv, '--no-such-flag']);
    t.equal(r.code, 2, `lanctl ${k} --no-such-flag: exit 2`);
    t.match(r.stderr, '--no-such-flag', `lanctl ${k}: the bad flag named`);
    t.match(r.stderr, `lanctl ${k} --help`, `lanctl ${k}: what to run to see its options`);
  }
  const spawned = await run(LANCTL, ['status', '--no-such-flag']);
  t.equal(spawned.code, 2, 'and so does the lanctl process: exit 2');
  t.match(spawned.stderr, '--no-such-flag');
});

t.test('a required argument or option left out: exit 2, naming it', async (t) => {
  const cases: Array<{ usage: string; argv: string[]; missing: string }> = [];
  for (const d of commands) {
    if (/^lanctl (serve|demo)\b/.test(d.usage)) continue; // they start things; their bad input is below
    const m = minimalArgv(d);
    // The required positionals from the last back (each left out with those after it, as a hand
    // that stops typing leaves them), the options kept; then each required option left out alone.
    for (const p of m.positionals.toReversed()) {
      cases.push({ usage: d.usage, argv: m.argv.filter((_, i) => i < p.at || (i > p.at && !m.positionals.some((q) => q.at === i))), missing: p.name });
    }
    for (const option of m.options) {
      const at = m.argv.indexOf(option);
      cases.push({ usage: d.usage, argv: [...m.argv.slice(0, at), ...m.argv.slice(at + 2)], missing: option });
    }
  }
  // `config check` takes its FILE as --config too: given, it is not missing.
  const runs = await inTurn(cases, (c) => run(LANCTL, commands.find((d) => d.usage === c.usage)!.cell.includes('(or `--config FILE`)') ? c.argv : withConfig(c.argv)));
  cases.forEach((c, i) => {
    const r = runs[i]!;
    const names = c.missing.replace(/\.\.\.$/, '').split('|');
    t.equal(r.code, 2, `${c.usage}, without ${c.missing} (lanctl ${c.argv.join(' ')}): exit 2 (${r.stderr.trim().split('\n')[0]})`);
    t.ok(names.some((n) => said(r).includes(n)), `${c.usage}: the message names ${c.missing} (${said(r).trim()})`);
  });
});

t.test('no daemon: the commands that need one exit 3 and say how to start it; --json prints only JSON', async (t) => {
  // The ones that talk to a daemon take --socket (a row may hold one that does not: `vip release`).
  const cases = commands.filter((d) => /\b3 daemon not running\b/.test(d.exitCodes) && helpOf(minimalArgv(d).argv).includes('--socket'));
  t.ok(cases.length >= 25, `${cases.length} command lines need a daemon`);
  const argvs = cases.map((d) => {
    const m = minimalArgv(d).argv;
    return flagsOf(d.usage).includes('--json') ? [...m, '--json'] : m;
  });
  // A command that needs one of its optional fields (`nodes set NAME` with nothing to set) is given
  // the row's options one by one until its arguments are whole.
  const runs = await inTurn(argvs, async (argv) => {
    let r = await run(LANCTL, withConfig(argv));
    const d = cases[argvs.indexOf(argv)]!;
    for (const [, option, placeholder] of d.usage.matchAll(/\[(--[a-z-]+) ([A-Z]+)/g)) {
      if (r.code !== 2) break;
      argv.push(option!, SAMPLE[placeholder!] ?? 'x');
      r = await run(LANCTL, withConfig(argv));
    }
    return r;
  });
  cases.forEach((d, i) => {
    const r = runs[i]!;
    const argv = argvs[i]!;
    t.equal(r.code, 3, `lanctl ${argv.join(' ')}: exit 3 (${r.stderr.trim().split('\n')[0]})`);
    t.match(r.stderr, /lanha is not running[^]*Start it with `systemctl start lanha` or `lanctl serve --config FILE`/, `${d.usage}: says how to start it`);
    if (argv.includes('--json') && r.stdout.trim() !== '') {
      t.doesNotThrow(() => JSON.parse(r.stdout), `${d.usage} --json: its output parses`);
    }
  });
});

t.test('the daemon commands, lanctl serve and lanhad: help, a bad flag, a missing config', async (t) => {
  const missing = join(scratch, 'none.yaml');
  for (const [name, script, prefix] of [['lanctl serve', LANCTL, ['serve']], ['lanhad', LANHAD, []]] as const) {
    const help = await run(script, [...prefix, '--help']);
    t.equal(help.code, 0, `${name} --help: exit 0`);
    for (const flag of flagsOf(commands.find((d) => d.usage.startsWith('lanctl serve'))!.usage)) t.match(help.stdout, flag, `${name} --help mentions ${flag}`);
    const bad = await run(script, [...prefix, '--no-such-flag']);
    t.equal(bad.code, 2, `${name} --no-such-flag: exit 2`);
    t.match(bad.stderr, '--no-such-flag', `${name}: the flag named`);
    const version = await run(script, ['--version']);
    t.equal(version.code, 0, `${name.split(' ')[0]} --version: exit 0`);
    t.match(version.stdout, /^\S+ \d+\.\d+\.\d+/, 'the version');
    // Its own name, as it is typed: `lanhad serve` is not a thing lanhad takes.
    t.match(help.stdout, `Usage: ${name} --config FILE`, `${name} --help: its usage as typed`);
    t.match(bad.stderr, `Run \`${name} --help\``, `${name}: the --help to run, as typed`);
    const none = await run(script, [...prefix, '--config', missing]);
    t.equal(none.code, 2, `${name} --config MISSING: exit 2, bad config, nothing started`);
    t.match(none.stderr, missing, `${name}: the file named`);
  }
});
