import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONTROL_SOCKET, controlSocketFrom, controlSocketOf, scanControlSocket } from './config-peek.js';
import { LanhaError } from './errors.js';
import { loadConfig } from '../config/index.js';
import { repoPath } from '../test/support/paths.js';

// Proves a client command finds the same control socket the daemon binds, without the schemas:
// for the shipped examples and for YAML forms a config may use, and that a file it cannot use is a
// LanhaError naming the file (exit 2), or exit 2 "no config at" when it is missing.

t.test('the examples give the socket the validated config gives', async (t) => {
  for (const f of ['examples/site.yaml', 'examples/single-node.yaml']) {
    const file = repoPath(f);
    t.equal(controlSocketFrom(file), loadConfig(file).node.controlSocket, f);
  }
});

t.test('YAML forms of node.controlSocket', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['plain, with a comment', 'node:\n  name: a\n  controlSocket: /run/x.sock   # here\n', '/run/x.sock'],
    ['quoted', 'node:\n  name: a\n  controlSocket: "/tmp/a b.sock"\n', '/tmp/a b.sock'],
    ['flow mapping', 'node: { name: a, controlSocket: /s.sock }\n', '/s.sock'],
    ['absent: the default', 'node:\n  name: a\ndns:\n  controlSocket: /not/this\n', DEFAULT_CONTROL_SOCKET],
    ['through an anchor', 'base: &n\n  name: a\n  controlSocket: /anchored.sock\nnode: *n\n', '/anchored.sock'],
    ['other blocks not validated', 'node:\n  name: a\n  controlSocket: /s\ndns:\n  port: 99999\n', '/s'],
  ];
  for (const [name, text, want] of cases) t.equal(controlSocketOf(text, 'f.yaml'), want, name);
});

t.test('a file it cannot use is an error naming the file and what to do', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['not YAML', 'node: [unclosed\n', /f\.yaml: is not valid YAML/],
    ['not a mapping', '- a\n- b\n', /f\.yaml: has no node: block/],
    ['empty', '', /f\.yaml: has no node: block/],
    ['socket not text', 'node:\n  controlSocket: 5\n', /node\.controlSocket: 5 is not a socket path/],
    ['socket a list', 'node:\n  controlSocket: [a]\n', /node\.controlSocket: a list or mapping is not a socket path/],
  ];
  for (const [name, text, want] of cases) {
    try {
      controlSocketOf(text, 'f.yaml');
      t.fail(`${name}: no error`);
    } catch (error) {
      t.ok(error instanceof LanhaError, name);
      t.equal((error as LanhaError).exitCode, 2, `${name}: exit 2`);
      t.match((error as Error).message, want, name);
      t.match((error as Error).message, 'lanctl config check f.yaml', `${name}: says what to run`);
    }
  }
});

t.test('missing and unreadable files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-peek-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => controlSocketFrom(join(dir, 'none.yaml')), { exitCode: 2, message: /no config at .*none\.yaml: give --config FILE or --socket PATH/ });
  // A directory cannot be read as a file even by root (a mode-000 file can be).
  t.throws(() => controlSocketFrom(dir), { exitCode: 2, message: new RegExp(`cannot read the config ${dir} \\(EISDIR: a directory, not a file\\)`) });
  const file = join(dir, 'ok.yaml');
  writeFileSync(file, readFileSync(repoPath('examples/site.yaml')));
  t.equal(controlSocketFrom(file), loadConfig(file).node.controlSocket);
});

t.test('the line scanner answers as the yaml parser does, or leaves the file to it', async (t) => {
  // Texts stitched from lines a config may hold (and some it should not); wherever the parser reads
  // the file without error and the scanner answers, both give the same socket.
  const lines = [
    'node:', '  name: a', '  controlSocket: /run/a.sock', '  controlSocket: "/q/a b.sock"', "  controlSocket: '/s/x.sock'   # c",
    '  controlSocket: /p/a#b', '  controlSocket: /c/x # comment', '  controlSocket:', '    /cont', '  controlSocket: 5', '  controlSocket: ~',
    '  controlSocket: .rel/x.sock', '  controlSocket: "/e\\"x"', '    more: 1', '   odd: 2', '  - item', 'node: &n', 'node: *n', 'node: { controlSocket: /f }',
    'dns:', '  port: 53', '  records: ["a A 1.2.3.4",', '    "b A 1.2.3.5"]', '  x: "multi', 'node2: 1', '  txt: "say \\"hi\\""', '# comment',
    '  # indented comment', '', '---', 'base: &n', "  note: it's", '  k: |', '    controlSocket: /in/block', '\tcontrolSocket: /tab', ' controlSocket: /one',
  ];
  const fc = await import('fast-check');
  const { parseDocument } = await import('yaml');
  const clean = ['  name: a', '  controlSocket: /run/a.sock', "  controlSocket: '/s/x.sock'   # c", '  controlSocket: .rel/x.sock', '    more: 1', '# c', 'dns:', '  port: 53', ''];
  for (const [pool, least] of [[lines, 50], [clean, 1000]] as const) {
    let answered = 0;
    const inNode = pool.filter((l) => /^(  |#|$)/.test(l));
    const anyLines = fc.array(fc.constantFrom(...pool), { maxLength: 5 });
    fc.assert(fc.property(anyLines, fc.array(fc.constantFrom(...inNode), { minLength: 1, maxLength: 6 }), anyLines, (before, body, after) => {
      const text = [...before, 'node:', ...body, ...after].join('\n') + '\n';
      const scanned = scanControlSocket(text);
      if (scanned === undefined) return;
      const doc = parseDocument(text, { uniqueKeys: false });
      if (doc.errors.length > 0) return;
      answered++;
      const parsed = doc.getIn(['node', 'controlSocket']);
      if ((parsed ?? null) !== scanned) throw new Error(`scanner ${JSON.stringify(scanned)}, parser ${JSON.stringify(parsed)} for:\n${text}`);
    }), { numRuns: 20_000, seed: 4242 });
    t.ok(answered > least, `the scanner answered ${answered} of 20000 files from ${pool.length} kinds of line`);
  }
});
