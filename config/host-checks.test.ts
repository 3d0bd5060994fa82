import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseConfig } from './index.js';
import { hostProblems, isThisMachine, type HostView } from './host-checks.js';
import { repoPath } from '../test/support/paths.js';

// What a valid config names on the machine that runs it, asked of a machine given as a table: the
// TFTP and boot directories, the cluster key and the interfaces, each named by key path and value.

function machine(paths: Record<string, string>, interfaces: string[], addresses: string[] = ['127.0.0.1'], unreadable: string[] = []): HostView {
  return {
    kind: (path) => paths[path] ?? 'ENOENT',
    readable: (path) => !unreadable.includes(path),
    interfaces: () => interfaces,
    addresses: () => addresses,
    user: () => 'lanha',
    absolute: (path) => (path.startsWith('/') ? path : `/home/op/${path}`),
  };
}

const site = parseConfig(readFileSync(repoPath('examples/site.yaml'), 'utf8'), 'site.yaml');

t.test('the site example on a machine that has what it names: no problems', async (t) => {
  const host = machine({ '/srv/tftp': 'dir', '/etc/lanha/cluster.key': 'file' }, ['eth0', 'lo'], ['10.20.0.2']);
  t.same(hostProblems(site, host), []);
  t.ok(isThisMachine(site, host), 'node.address 10.20.0.2 is an address here');
  t.notOk(isThisMachine(site, machine({}, [], ['192.168.1.5'])), 'a laptop checking the site config is not that machine');
});

t.test('each missing thing is named by its key path and value, with what to do', async (t) => {
  const bare = machine({}, ['lo', 'wlan0']);
  t.same(hostProblems(site, bare).map((p) => p.message), [
    'cluster.keyFile: "/etc/lanha/cluster.key" does not exist on this machine: make it on one member with `lanctl init --config FILE` and copy it (mode 0600) to the others',
    'tftp.root: "/srv/tftp" does not exist on this machine: create the directory TFTP serves, or correct the path',
    'dhcp.interface: "eth0" is not an interface on this machine (it has lo, wlan0)',
    'vip.interface: "eth0" is not an interface on this machine (it has lo, wlan0)',
  ]);
  t.same(hostProblems(site, bare).map((p) => p.mayAppear), [false, false, true, true], 'only an interface may still come up (serve leaves it to the start, which is retried)');
  const wrongKinds = machine({ '/srv/tftp': 'file', '/etc/lanha/cluster.key': 'dir' }, ['eth0']);
  t.same(hostProblems(site, wrongKinds).map((p) => p.message), [
    'cluster.keyFile: "/etc/lanha/cluster.key" is not a file: give the key file `lanctl init` made',
    'tftp.root: "/srv/tftp" is not a directory: give the directory TFTP serves',
  ]);
  const locked = machine({ '/srv/tftp': 'dir', '/etc/lanha/cluster.key': 'file' }, ['eth0'], [], ['/srv/tftp', '/etc/lanha/cluster.key']);
  t.same(hostProblems(site, locked).map((p) => p.message), [
    'cluster.keyFile: "/etc/lanha/cluster.key" cannot be read by user lanha: chown lanha /etc/lanha/cluster.key (keep mode 0600)',
    'tftp.root: "/srv/tftp" cannot be read by user lanha: chmod o+rx it (or chgrp it to that user\'s group)',
  ]);
});

t.test('boot.root is asked for when it differs from tftp.root', async (t) => {
  const config = parseConfig(`
node: { name: solo, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
tftp: { root: /srv/tftp }
boot: { root: /srv/kernels }
`, 'b.yaml');
  t.same(hostProblems(config, machine({ '/srv/tftp': 'dir' }, [])).map((p) => p.message),
    ['boot.root: "/srv/kernels" does not exist on this machine: create the directory boot files are read from, or correct the path']);
});

t.test('a relative path is shown where it resolves: the config may have been read from another directory', async (t) => {
  const config = parseConfig(`
node: { name: solo, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
tftp: { root: examples/tftp-root }
`, 'r.yaml');
  t.same(hostProblems(config, machine({}, [])).map((p) => p.message),
    ['tftp.root: "examples/tftp-root" (/home/op/examples/tftp-root: relative paths are taken from the directory lanctl runs in) does not exist on this machine: create the directory TFTP serves, or correct the path']);
});
