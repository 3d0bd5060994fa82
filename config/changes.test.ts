import t from 'tap';
import { configChanges } from './changes.js';

t.test('configChanges: the paths that differ, down to the given depth, sorted', async (t) => {
  const a = { node: { name: 'a', logLevel: 'info' }, dns: { port: 53, zones: [{ name: 'lan' }] }, tftp: { root: '/srv' } };
  t.same(configChanges(a, structuredClone(a)), [], 'equal configs');
  t.same(configChanges(a, { ...a, node: { name: 'a', logLevel: 'debug' } }), ['node.logLevel']);
  t.same(configChanges(a, { ...a, dns: { port: 53, zones: [{ name: 'lan' }, { name: 'x' }] } }), ['dns.zones'], 'arrays compare whole');
  t.same(configChanges(a, { ...a, dns: { port: 53, zones: [{ name: 'lab' }] } }), ['dns.zones']);
  const { tftp: _tftp, ...noTftp } = a;
  t.same(configChanges(a, noTftp), ['tftp'], 'a section removed');
  t.same(configChanges(noTftp, a), ['tftp'], 'a section added');
  t.same(configChanges(a, { ...a, ntp: { port: 123 }, node: { name: 'b', logLevel: 'warn' } }), ['node.logLevel', 'node.name', 'ntp']);
  t.same(configChanges({ x: { y: { z: 1 } } }, { x: { y: { z: 2 } } }, 1), ['x'], 'depth 1');
  t.same(configChanges({ k: undefined, a: 1 }, { a: 1 }), [], 'an undefined key is an absent key');
  t.same(configChanges({ key: new Uint8Array([1, 2]) }, { key: new Uint8Array([1, 2]) }), [], 'bytes compare by content');
  t.same(configChanges({ key: new Uint8Array([1, 2]) }, { key: new Uint8Array([1, 3]) }), ['key']);
  t.same(configChanges(1, 2), ['(the whole file)']);
});
