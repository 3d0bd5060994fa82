// POST /v1/deploy/trust against a real daemon (one member, no root needed): a host key is pinned
// only for a name deploy can reach (deploy.targets) or an inventory node; any other name is refused
// and nothing is recorded for it, so a key cannot wait under a name a node is given later.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { callDaemon } from '../../lib/control-client.js';
import { scratchConfig, serveDaemon } from '../support/daemon.js';

t.setTimeout(180_000);

/** A fresh ed25519 public key in OpenSSH form: string "ssh-ed25519", string key (RFC 8709). */
function opensshKey(): string {
  const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const str = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')}`;
}
const KEY = opensshKey();

t.test('trust pins keys for known nodes only', async (t) => {
  const scratch = scratchConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/lanha.sock" }
deploy:
  targets:
    - { name: c1, host: 127.0.0.1 }
`);
  t.teardown(scratch.cleanup);
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  const socket = `${scratch.dir}/lanha.sock`;

  const unknown = await callDaemon(socket, 'POST', '/v1/deploy/trust', { node: 'c9', hostKey: KEY });
  t.equal(unknown.status, 404, 'a name no target or inventory node has is refused');
  t.match(JSON.stringify(unknown.body), /unknown node c9/);

  const known = await callDaemon(socket, 'POST', '/v1/deploy/trust', { node: 'c1', hostKey: KEY });
  t.equal(known.status, 200, JSON.stringify(known.body));

  const view = await callDaemon(socket, 'GET', '/v1/rootfs');
  t.equal(view.status, 200);
  const nodes = (view.body as { nodes: { name: string; pinned: boolean }[] }).nodes;
  t.same(nodes.map((n) => [n.name, n.pinned]), [['c1', true]], 'c1 pinned; nothing recorded for c9');
});
