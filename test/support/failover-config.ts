// The config of lan-a in a two-server + witness cluster with a VIP, for tests that run the planned
// failover (services/vip/failover.ts) against a scripted leader; `drainTimeout` is the one knob.

export function failoverTestConfig(drainTimeout: string): string {
  return `
node: { name: lan-a, role: server, address: 10.20.0.2, stateDir: /tmp/x, controlSocket: /tmp/x.sock }
cluster:
  id: c
  keyFile: /tmp/k
  members:
    - { name: lan-a, address: 10.20.0.2 }
    - { name: lan-b, address: 10.20.0.3 }
    - { name: witness, address: 10.20.0.9, role: witness }
vip: { address: 10.20.0.1/24, interface: eth9, drainTimeout: ${drainTimeout} }
`;
}
