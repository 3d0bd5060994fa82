import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONTROL_SOCKET, controlSocketFrom, controlSocketOf } from './config-peek.js';
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
  t.throws(() => controlSocketFrom(dir), { exitCode: 2, message: new RegExp(`cannot read the config ${dir} \\(EISDIR\\)`) });
  const file = join(dir, 'ok.yaml');
  writeFileSync(file, readFileSync(repoPath('examples/site.yaml')));
  t.equal(controlSocketFrom(file), loadConfig(file).node.controlSocket);
});
