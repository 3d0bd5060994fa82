import t from 'tap';
import { parseConfig } from '../../config/index.js';
import { systemClock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/log.js';
import { etcdClient, openState } from '../open-state.js';
import { freePort } from '../../test/support/ports.js';

// Opening `cluster.backend: etcd` from a config: files the block names that cannot be read fail with
// the key path and the file, and an etcd nobody answers at fails start-up naming the endpoint.

const config = (etcd: string): ReturnType<typeof parseConfig> => parseConfig(`
node: { name: lan-a, stateDir: /tmp/lanha-etcd-open, controlSocket: /tmp/lanha-etcd-open.sock }
cluster:
  id: site1
  backend: etcd
  members: [{ name: lan-a, address: 127.0.0.1 }]
  etcd: ${etcd}
`);

t.test('a TLS or password file that cannot be read is named with its key path', async (t) => {
  t.throws(() => etcdClient(config('{ endpoints: ["https://127.0.0.1:2379"], tls: { ca: /nonexistent/ca.pem } }')), /^cluster\.etcd\.tls\.ca: cannot read \/nonexistent\/ca\.pem: ENOENT$/);
  t.throws(() => etcdClient(config('{ endpoints: ["https://127.0.0.1:2379"], tls: { cert: /nonexistent/c.pem, key: /nonexistent/c.key } }')), /^cluster\.etcd\.tls\.cert: cannot read \/nonexistent\/c\.pem/);
  t.throws(() => etcdClient(config('{ endpoints: ["http://127.0.0.1:2379"], username: lanha, passwordFile: /nonexistent/pw }')), /^cluster\.etcd\.passwordFile: cannot read \/nonexistent\/pw: ENOENT$/);
});

t.test('no etcd at the endpoints: start-up fails naming them', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  await t.rejects(openState(config(`{ endpoints: ["${dead}"], dialTimeout: 300ms }`), silentLogger, systemClock),
    new RegExp(`cannot read the state from etcd \\(${dead}, prefix /lanha/site1/\\): etcd ${dead}: ECONNREFUSED`));
});
