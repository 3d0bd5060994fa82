import t from 'tap';
import { EtcdClient, EtcdError, prefixEnd, type WatchEvent } from './client.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcdCluster, etcdAvailable, makeEtcdTls } from '../../test/support/etcd.js';
import { freePort } from '../../test/support/ports.js';
import { haveTools } from '../../test/support/tools.js';

// The gateway client against a real one-member etcd on loopback: reads, compare-and-put, leases,
// watches (events in order, a compacted start revision), failover past a dead endpoint with errors
// that name it, etcd authentication (a user limited to one prefix; a wrong password named), and
// https with client certificates (a wrong CA or a missing certificate refused, the endpoint named).

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

t.test('prefixEnd is the first key after the prefix', async (t) => {
  t.equal(prefixEnd('/lanha/r1/'), '/lanha/r10');
  t.equal(prefixEnd('a'), 'b');
});

t.test('etcd gateway client', async (t) => {
  if (!etcdAvailable() && !haveTools(t, ['etcd'], 'etcd client test (Debian etcd-server)')) return;
  const cluster = await startEtcdCluster(1);
  t.teardown(() => cluster.stop());
  const dead = `http://127.0.0.1:${await freePort()}`;
  const client = new EtcdClient({ endpoints: [dead, ...cluster.endpoints], dialTimeoutMs: 500, requestTimeoutMs: 2000 });
  t.teardown(() => client.close());

  const rev = await client.put('/t/a', 'one');
  t.ok(rev > 1, `put answered with revision ${rev}`);
  t.equal(client.endpoint, cluster.endpoints[0], 'moved past the dead endpoint to the live one');
  const r = await client.range('/t/', { rangeEnd: prefixEnd('/t/') });
  t.equal(r.kvs.length, 1);
  t.equal(text(r.kvs[0]!.value), 'one');
  t.equal(r.kvs[0]!.modRevision, rev);

  const won = await client.txn([{ key: '/t/b', target: 'CREATE', result: 'EQUAL', createRevision: 0 }], [{ put: { key: '/t/b', value: new TextEncoder().encode('first') } }], [{ range: { key: '/t/b' } }]);
  t.ok(won.succeeded, 'create-if-absent succeeds once');
  const lost = await client.txn([{ key: '/t/b', target: 'CREATE', result: 'EQUAL', createRevision: 0 }], [{ put: { key: '/t/b', value: new TextEncoder().encode('second') } }], [{ range: { key: '/t/b' } }]);
  t.notOk(lost.succeeded, 'and fails the second time');
  t.equal(text(lost.ranges[0]![0]!.value), 'first', 'the failure branch read the holder');

  const lease = await client.leaseGrant(1);
  t.ok(lease.ttlS >= 1, `lease ${lease.id} granted with TTL ${lease.ttlS}`);
  t.ok(await client.leaseKeepAlive(lease.id) >= 1, 'keep-alive renews it');
  await client.put('/t/leased', 'x', lease.id);
  await client.leaseRevoke(lease.id);
  t.equal((await client.range('/t/leased')).kvs.length, 0, 'revoking the lease deleted its key');
  t.equal(await client.leaseKeepAlive(lease.id), 0, 'a keep-alive of a gone lease says TTL 0');

  const seen: WatchEvent[] = [];
  const start = (await client.range('/t/a')).revision + 1;
  const watch = client.watch('/w/', prefixEnd('/w/'), start, (events) => { seen.push(...events); });
  for (let i = 0; i < 5; i++) await client.put(`/w/${i}`, String(i));
  await client.deleteRange('/w/0');
  for (let i = 0; i < 50 && seen.length < 6; i++) await new Promise((r) => setTimeout(r, 50));
  t.same(seen.map((e) => `${e.type} ${e.kv.key}`), ['put /w/0', 'put /w/1', 'put /w/2', 'put /w/3', 'put /w/4', 'delete /w/0'], 'events arrive in revision order');
  t.ok(seen.every((e, i) => i === 0 || e.kv.modRevision > seen[i - 1]!.kv.modRevision), 'with increasing revisions');
  watch.cancel();
  t.equal(await watch.done, null, 'a cancelled watch ends without an error');

  const head = (await client.range('/t/a')).revision;
  await client.compact(head);
  const old = client.watch('/w/', prefixEnd('/w/'), 2, () => undefined);
  const error = await old.done;
  t.ok(error instanceof EtcdError && error.compacted, `a watch from a compacted revision ends with compacted (${error?.message})`);
  await t.rejects(client.range('/t/a', { revision: 2 }), /compacted/, 'so does a range at a compacted revision');

  const health = await client.health();
  t.same(health.map((h) => h.ok), [false, true], 'health: the dead endpoint is down, the member up');
  t.match(health[0]!.error, new RegExp(`etcd ${dead}: ECONNREFUSED`), 'the failure names the endpoint');
  t.ok(health[1]!.isLeader, 'a one-member cluster is its own leader');

  const nowhere = new EtcdClient({ endpoints: [dead], dialTimeoutMs: 300, requestTimeoutMs: 1000 });
  await t.rejects(nowhere.range('/x'), new RegExp(`etcd ${dead}: ECONNREFUSED`), 'no endpoint: the error names it');
  nowhere.close();

  // etcd authentication (username + password file in the config): a role with readwrite on one prefix.
  const admin = async (path: string, body: unknown): Promise<void> => {
    const r = await fetch(`${cluster.endpoints[0]}${path}`, { method: 'POST', body: JSON.stringify(body) });
    t.equal(r.status, 200, `${path}: ${await r.text()}`);
  };
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  await admin('/v3/auth/role/add', { name: 'root' });
  await admin('/v3/auth/user/add', { name: 'root', password: 'rootpw' });
  await admin('/v3/auth/user/grant', { user: 'root', role: 'root' });
  await admin('/v3/auth/role/add', { name: 'lanha' });
  await admin('/v3/auth/role/grant', { name: 'lanha', perm: { permType: 'READWRITE', key: b64('/site/'), range_end: b64(prefixEnd('/site/')) } });
  await admin('/v3/auth/user/add', { name: 'lanha', password: 'secret' });
  await admin('/v3/auth/user/grant', { user: 'lanha', role: 'lanha' });
  await admin('/v3/auth/enable', {});
  const authed = new EtcdClient({ endpoints: cluster.endpoints, auth: { username: 'lanha', password: 'secret' } });
  t.teardown(() => authed.close());
  await authed.put('/site/k', 'v');
  t.equal(text((await authed.range('/site/k')).kvs[0]!.value), 'v', 'with auth on, the user reads and writes its prefix');
  await t.rejects(authed.put('/other/k', 'v'), /permission denied/, 'and nothing outside it');
  const wrong = new EtcdClient({ endpoints: cluster.endpoints, auth: { username: 'lanha', password: 'nope' } });
  await t.rejects(wrong.range('/site/k'), /authentication as lanha failed.*check cluster\.etcd\.username and passwordFile/, 'a wrong password says which setting to check');
  wrong.close();
  const anonymous = new EtcdClient({ endpoints: cluster.endpoints });
  await t.rejects(anonymous.range('/site/k'), /user name is empty|permission denied|auth/, 'without credentials etcd refuses');
  anonymous.close();
});

t.test('etcd over TLS with client certificates: the configured files work, a wrong CA or no certificate fails naming the endpoint', async (t) => {
  if (!etcdAvailable() && !haveTools(t, ['etcd'], 'etcd TLS test (Debian etcd-server)')) return;
  if (!haveTools(t, ['openssl', 'curl'], 'etcd TLS test (openssl, curl)')) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-etcd-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tls = makeEtcdTls(dir);
  const cluster = await startEtcdCluster(1, { tls });
  t.teardown(() => cluster.stop());
  const endpoint = cluster.endpoints[0]!;
  t.match(endpoint, /^https:/);
  const good = new EtcdClient({ endpoints: [endpoint], tls: { ca: readFileSync(tls.ca), cert: readFileSync(tls.clientCert), key: readFileSync(tls.clientKey) } });
  await good.put('/tls/k', 'v');
  t.equal(text((await good.range('/tls/k')).kvs[0]!.value), 'v', 'with ca, cert and key: reads and writes');
  good.close();
  const other = makeEtcdTls(mkdtempSync(join(dir, 'other-')));
  const wrongCa = new EtcdClient({ endpoints: [endpoint], tls: { ca: readFileSync(other.ca), cert: readFileSync(tls.clientCert), key: readFileSync(tls.clientKey) }, requestTimeoutMs: 2000 });
  await t.rejects(wrongCa.range('/tls/k'), new RegExp(`etcd ${endpoint}: .*(certificate|self.signed|verify)`, 'i'), 'a CA that did not sign the server: refused, endpoint named');
  wrongCa.close();
  const noCert = new EtcdClient({ endpoints: [endpoint], tls: { ca: readFileSync(tls.ca) }, requestTimeoutMs: 2000 });
  await t.rejects(noCert.range('/tls/k'), new RegExp(`etcd ${endpoint}: `), 'no client certificate: refused, endpoint named');
  noCert.close();
});
