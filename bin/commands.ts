import { DAEMON_OPTIONS, DAEMON_OPTION_HELP, DEFAULT_CONFIG, DEFAULT_KEY_FILE, DEFAULT_TLS_DIR, lazy, type CliCommand } from './cli.js';
import { POWER_ACTIONS } from '../cluster/power.js';

// The whole `lanctl` surface: each command's path, summary, usage and options (what --help and the
// argument parser need), and the module that runs it, loaded only when that command runs. So a
// command loads what it uses and no more: `lanctl status` does not parse the deploy, init or demo
// code, nor the config schemas, and `lanctl --help` or a usage error loads no command module at
// all (a Raspberry Pi spent most of a command's second on module loading). The test
// test/cli/lanctl-modules.test.ts holds each read-only command to the modules it needs.

const FIELD_OPTIONS = { mac: { type: 'string' }, ip: { type: 'string' }, profile: { type: 'string' }, group: { type: 'string' } } as const;
const FIELD_HELP: ReadonlyArray<readonly [string, string]> = [
  ['--mac M', 'the node\'s MAC address, like 52:54:00:12:34:56'],
  ['--ip A', 'its fixed address, inside a DHCP subnet (none: a pool address, still under its name)'],
  ['--profile P', 'its boot profile (a `profiles:` name; an unknown one is accepted and flagged)'],
  ['--group G', 'its group, for deploys to several nodes'],
];
const JSON_OPTION = { json: { type: 'boolean' } } as const;
const JSON_WRITE_HELP: readonly [string, string] = ['--json', 'print the node as `lanctl nodes show NAME --json` shows it under "node" (a dry run: {"dryRun": true, "command": ...})'];
const JSON_HELP: [string, string] = ['--json', 'no progress lines; when the job ends, print it as `lanctl deploy jobs JOB --json` does (with --detach: {"job": ID})'];
const EXPLAIN_USAGE = 'explain MAC|IP|NAME [--json] | explain --simulate --mac M [--arch N] [--vendor-class S] [--user-class S] [--client-id HEX] [--json]';

export const commands: readonly CliCommand[] = [
  // core
  {
    path: ['serve'],
    positionalsMax: 0,
    summary: 'run the daemon: the services and cluster role the config enables (runs until SIGTERM)',
    usage: 'serve --config FILE [--log-format text|json]',
    options: { config: { type: 'string', short: 'c' }, 'log-format': { type: 'string' } },
    optionHelp: [
      ['-c, --config FILE', `the node's config (default ${DEFAULT_CONFIG})`],
      ['--log-format F', 'text (one human line per event) or json; default: text on a terminal, json otherwise (systemd)'],
    ],
    run: lazy(() => import('./commands-core.js'), 'serveRun'),
  },
  {
    path: ['config', 'check'],
    summary: 'validate a config file and print what it enables; exit 2 and one line per problem if invalid',
    usage: 'config check FILE',
    // --config too: every other command takes the file that way, so it is what a hand types here.
    options: { config: { type: 'string', short: 'c' } },
    optionHelp: [['-c, --config FILE', 'the file, as other commands take it (or as the argument)']],
    run: lazy(() => import('./commands-core.js'), 'configCheckRun'),
  },

  // init
  {
    path: ['init'],
    summary: 'make the cluster key (32 random bytes, mode 0600) that every member shares, or with --tls the cluster CA and member certificates',
    usage: 'init [--config FILE] [--key FILE] [--force] | init --tls --config FILE [--dir DIR] [--force | --renew [--member NAME]... | --rotate-ca | --finish-rotation] | init --tls --operator NAME --out DIR [--config FILE | --dir DIR]',
    options: {
      config: { type: 'string', short: 'c' }, key: { type: 'string' }, force: { type: 'boolean' }, tls: { type: 'boolean' }, dir: { type: 'string' },
      operator: { type: 'string' }, out: { type: 'string' }, renew: { type: 'boolean' }, member: { type: 'string', multiple: true },
      'rotate-ca': { type: 'boolean' }, 'finish-rotation': { type: 'boolean' },
    },
    optionHelp: [
      ['-c, --config FILE', 'the site config: the key goes to its cluster.keyFile, and the members to copy it to are listed'],
      ['--key FILE', `where to write the key (default: the config's cluster.keyFile, else ${DEFAULT_KEY_FILE})`],
      ['--tls', 'make the cluster CA and an ECDSA P-256 key + certificate per member of the config (needs the openssl command)'],
      ['--dir DIR', `with --tls: where to write them (default: the directory of the config's cluster.tls.ca, else ${DEFAULT_TLS_DIR})`],
      ['--force', 'replace an existing key, or with --tls existing CA and certificates (every member must then get the new ones)'],
      ['--renew', 'with --tls: new keys and certificates for the members (all, or each --member NAME) from the CA here, the CA kept: restart the members one at a time, no outage'],
      ['--member NAME', 'with --renew: only this member (repeat for more)'],
      ['--rotate-ca', 'with --tls: a new cluster CA, trusted beside the old one (ca.pem holds both) until --finish-rotation; prints the three steps, each a restart of the members one at a time, no outage'],
      ['--finish-rotation', 'with --tls: once every member has a certificate of the new CA (--renew), drop the old CA from ca.pem and delete its key'],
      ['--operator NAME', 'with --tls: an operator\'s client certificate for `lanctl --remote` (signed by the CA in --dir or the config\'s cluster.tls), written to --out DIR'],
      ['--out DIR', 'with --operator: where to write ca.pem, operator.pem and operator.key (mode 0600); copy DIR to the operator\'s ~/.config/lanha'],
    ],
    run: lazy(() => import('./commands-init.js'), 'initRun'),
  },

  // cluster
  {
    path: ['cluster', 'rejoin'],
    summary: 'before the first start of a node that replaces a lost member: it rejoins as a rebuilt member and votes only once caught up',
    usage: 'cluster rejoin [--config FILE]',
    options: { config: { type: 'string', short: 'c' } },
    optionHelp: [['-c, --config FILE', `the node's config: its node.stateDir gets the member file (default ${DEFAULT_CONFIG})`]],
    run: lazy(() => import('./commands-cluster.js'), 'clusterRejoinRun'),
  },
  {
    path: ['raft', 'snapshot'],
    positionalsMax: 0,
    summary: 'take a Raft snapshot of this member\'s applied state now and compact its log behind it (not waiting for cluster.snapshotEntries)',
    usage: 'raft snapshot [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-raft.js'), 'raftSnapshotRun'),
  },

  // core
  {
    path: ['status'],
    positionalsMax: 0,
    summary: 'show the local daemon: node, role, cluster, services and where they listen',
    usage: 'status [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-core.js'), 'statusRun'),
  },

  // ntp
  {
    path: ['ntp', 'status'],
    positionalsMax: 0,
    summary: 'show NTP: synchronised or not, stratum, refid, offset to each upstream and to the peer node, counters',
    usage: 'ntp status [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-ntp.js'), 'ntpStatusRun'),
  },

  // dhcp
  {
    path: ['leases'],
    summary: 'list DHCP leases (ip, mac, hostname, client-id, state, expires in, subnet, the log index that committed it, the node that ACKed it) and how full each pool is',
    usage: 'leases [--json] [--mac M] [--ip A] [--all] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' }, mac: { type: 'string' }, ip: { type: 'string' }, all: { type: 'boolean' } },
    optionHelp: [
      ['--json', 'print JSON for scripts'],
      ['--mac M', 'only leases of this MAC'],
      ['--ip A', 'only the lease of this address'],
      ['--all', 'also released and expired leases (default: bound and declined)'],
      ...DAEMON_OPTION_HELP,
    ],
    run: lazy(() => import('./commands-dhcp.js'), 'leasesRun'),
  },
  {
    path: ['leases', 'release'],
    summary: 'release a DHCP lease now, by address or MAC (the address returns to the pool)',
    usage: 'leases release IP|MAC [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS },
    optionHelp: [...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-dhcp.js'), 'leasesReleaseRun'),
  },

  // dns
  {
    path: ['records'],
    summary: 'list the DNS records served: static (config), operator, lease-derived and reverse',
    usage: 'records [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-dns.js'), 'recordsRun'),
  },
  {
    path: ['records', 'set'],
    summary: 'add an operator DNS record (kept in the replicated state; served by every node)',
    usage: 'records set NAME TYPE DATA... [--ttl DURATION] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, ttl: { type: 'string' } },
    optionHelp: [['--ttl DURATION', 'record TTL, like 300 or 5m (default: the zone\'s)'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-dns.js'), 'recordsSetRun'),
  },
  {
    path: ['records', 'delete'],
    summary: 'delete operator DNS records by name, and optionally type and data',
    usage: 'records delete NAME [TYPE [DATA...]] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS },
    optionHelp: [...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-dns.js'), 'recordsDeleteRun'),
  },

  // nodes
  {
    path: ['nodes'],
    summary: 'list compute nodes: inventory (name, profile, group, generations), reservation, lease, last boot event',
    usage: 'nodes [--json] [--mac M] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' }, mac: { type: 'string' } },
    optionHelp: [['--json', 'print JSON for scripts'], ['--mac M', 'one node (any MAC the state knows), with its event history'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-nodes.js'), 'nodesRun'),
  },
  {
    path: ['nodes', 'add'],
    summary: 'add a compute node to the replicated inventory: its reservation, DNS names, boot profile and deploy target',
    usage: 'nodes add NAME --mac M [--ip A] [--profile P] [--group G] [--dry-run] [--json]',
    options: { ...DAEMON_OPTIONS, ...FIELD_OPTIONS, ...JSON_OPTION, 'dry-run': { type: 'boolean' } },
    optionHelp: [...FIELD_HELP, ['--dry-run', 'check only (clashes included); change nothing'], JSON_WRITE_HELP, ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-nodes.js'), 'nodesAddRun'),
  },
  {
    path: ['nodes', 'set'],
    summary: 'change a node\'s MAC, IP, profile or group (`none` clears --ip, --profile, --group)',
    usage: 'nodes set NAME [--mac M] [--ip A|none] [--profile P|none] [--group G|none] [--json]',
    options: { ...DAEMON_OPTIONS, ...FIELD_OPTIONS, ...JSON_OPTION },
    optionHelp: [...FIELD_HELP, JSON_WRITE_HELP, ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-nodes.js'), 'nodesSetRun'),
  },
  {
    path: ['nodes', 'remove'],
    summary: 'remove a node from the inventory (its reservation and names go; a config-seeded node is not seeded again)',
    usage: 'nodes remove NAME [--json]',
    options: { ...DAEMON_OPTIONS, ...JSON_OPTION },
    optionHelp: [JSON_WRITE_HELP, ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-nodes.js'), 'nodesRemoveRun'),
  },
  {
    path: ['nodes', 'import'],
    summary: 'import nodes from dnsmasq dhcp-host= lines and /etc/hosts lines; reports every line (imported, skipped and why)',
    usage: 'nodes import FILE... [--dry-run] [--strict] [--json]',
    options: { ...DAEMON_OPTIONS, 'dry-run': { type: 'boolean' }, strict: { type: 'boolean' }, json: { type: 'boolean' } },
    optionHelp: [
      ['--dry-run', 'check every line against the inventory; change nothing'],
      ['--strict', 'import nothing unless every line is good'],
      ['--json', 'print the per-line report as JSON'],
      ...DAEMON_OPTION_HELP,
    ],
    run: lazy(() => import('./commands-nodes.js'), 'nodesImportRun'),
  },
  {
    path: ['nodes', 'pending'],
    summary: 'unknown MACs whose firmware asked to netboot (first/last seen, arch, vendor class), newest first',
    usage: 'nodes pending [--json]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-nodes.js'), 'nodesPendingRun'),
  },
  {
    path: ['nodes', 'accept'],
    summary: 'make a pending MAC a node of the inventory',
    usage: 'nodes accept MAC NAME [--ip A] [--profile P] [--group G] [--json]',
    options: { ...DAEMON_OPTIONS, ip: FIELD_OPTIONS.ip, profile: FIELD_OPTIONS.profile, group: FIELD_OPTIONS.group, ...JSON_OPTION },
    optionHelp: [...FIELD_HELP.slice(1), JSON_WRITE_HELP, ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-nodes.js'), 'nodesAcceptRun'),
  },
  {
    path: ['nodes', 'show'],
    summary: 'one node: inventory entry, lease, generations; --timeline lists its boot steps with times and deltas',
    usage: 'nodes show NAME [--timeline] [--json]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' }, timeline: { type: 'boolean' } },
    optionHelp: [['--timeline', 'the boot steps: firmware DHCP, each file, OS DHCP, rsync, generation verified'], ['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-nodes.js'), 'nodesShowRun'),
  },
  {
    path: ['nodes', 'power'],
    summary: 'switch compute nodes on, off or cycle them, or ask their power state, with the site\'s power command (the power: block)',
    usage: `nodes power ${POWER_ACTIONS.join('|')} (NAME... | --group G | --all) [--json]`,
    options: { ...DAEMON_OPTIONS, group: { type: 'string' }, all: { type: 'boolean' }, json: { type: 'boolean' } },
    optionHelp: [['--group G', 'every node of group G'], ['--all', 'every node of the inventory'], ['--json', 'print the results as JSON'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-nodes.js'), 'nodesPowerRun'),
  },

  // vip
  {
    path: ['vip', 'release'],
    positionalsMax: 0,
    summary: 'delete the VIP from its interface if this node has it (idempotent; systemd runs it at start and stop)',
    usage: 'vip release [--config FILE]',
    options: { config: { type: 'string', short: 'c' } },
    optionHelp: [['-c, --config FILE', `the node's config (default ${DEFAULT_CONFIG})`]],
    run: lazy(() => import('./commands-vip.js'), 'vipReleaseRun'),
  },
  {
    path: ['vip', 'status'],
    positionalsMax: 0,
    summary: 'show the VIP: held here or by which node, since when, renewals and gratuitous ARPs',
    usage: 'vip status [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-vip.js'), 'vipStatusRun'),
  },
  {
    path: ['failover'],
    positionalsMax: 0,
    summary: 'planned failover: drain in-flight transfers, release the VIP, hand leadership to the other LAN-service node',
    usage: 'failover [--to NODE] [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, to: { type: 'string' }, json: { type: 'boolean' } },
    optionHelp: [['--to NODE', 'the node to hand over to (default: the other LAN-service node)'], ['--json', 'print JSON for scripts (progress still goes to stderr)'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-vip.js'), 'failoverRun'),
  },

  // boot
  {
    path: ['boot', 'inspect'],
    summary: 'check a U-Boot legacy script image (magic, both CRCs, type) and print its header and script',
    usage: 'boot inspect FILE [--json]',
    options: { json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts']],
    run: lazy(() => import('./commands-boot.js'), 'bootInspectRun'),
  },
  {
    path: ['boot', 'render'],
    summary: 'print the boot file the daemon would serve a node now (default boot.scr.uimg), or write its bytes',
    usage: 'boot render NODE|IP [--file NAME] [--out FILE] [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, file: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } },
    optionHelp: [
      ['--file NAME', 'the boot file name: boot.scr.uimg (default), boot.ipxe, pxelinux.cfg/01-<mac>, ...'],
      ['--out FILE', 'write the exact bytes served (a U-Boot image for U-Boot names)'],
      ['--json', 'print JSON for scripts'],
      ...DAEMON_OPTION_HELP,
    ],
    run: lazy(() => import('./commands-boot.js'), 'bootRenderRun'),
  },

  // deploy
  {
    path: ['rootfs', 'commit'],
    summary: 'store DIR as a new rootfs generation (id = sha256 of its manifest) on the leader',
    usage: 'rootfs commit DIR [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'rootfsCommitRun'),
  },
  {
    path: ['rootfs', 'list'],
    positionalsMax: 0,
    summary: 'rootfs generations (newest last), where they are verified, and each node\'s assigned/running/boot generation',
    usage: 'rootfs list [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'rootfsListRun'),
  },
  {
    path: ['rootfs', 'verify'],
    positionalsMax: 1,
    summary: 'check this member\'s copy of a generation (default: the newest) against its manifest; names every changed path',
    usage: 'rootfs verify [GEN] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS },
    optionHelp: [...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'rootfsVerifyRun'),
  },
  {
    path: ['rollback'],
    summary: 'assign nodes the generation before their current one (their boot files name it; a rootfs deploy brings running nodes back)',
    usage: 'rollback NODE|GROUP[,...] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS },
    optionHelp: [...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'rollbackRun'),
  },
  {
    path: ['deploy', 'rootfs'],
    summary: 'rsync a generation (default: the newest) to nodes over ssh with pinned host keys, then their overlay files',
    usage: 'deploy rootfs [GEN] --to NODES|GROUP [--dry-run] [--detach] [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, to: { type: 'string' }, 'dry-run': { type: 'boolean' }, detach: { type: 'boolean' }, json: { type: 'boolean' } },
    optionHelp: [['--to NODES', 'node names or groups, comma-separated (deploy.targets)'], ['--dry-run', 'rsync --dry-run: show what would move, change nothing'],
      ['--detach', 'print the job id and return; the leader keeps running it'], JSON_HELP, ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'deployRootfsRun'),
  },
  {
    path: ['deploy', 'push'],
    summary: 'copy files to nodes over SFTP (ssh2, pinned host keys): temp name, fsync, sha256 check, atomic rename; then run CMD',
    usage: 'deploy push FILE... --to NODES|GROUP [--dest DIR] [--then CMD] [--detach] [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, to: { type: 'string' }, dest: { type: 'string' }, then: { type: 'string' }, detach: { type: 'boolean' }, json: { type: 'boolean' } },
    optionHelp: [['--to NODES', 'node names or groups, comma-separated'], ['--dest DIR', 'directory on the nodes (default deploy.pushRoot; must stay under it)'],
      ['--then CMD', 'run CMD on each node after its files are in place (e.g. "systemctl restart app")'], ['--detach', 'print the job id and return'], JSON_HELP, ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'deployPushRun'),
  },
  {
    path: ['deploy', 'resume'],
    positionalsMax: 1,
    summary: 'complete an interrupted or failed job (default: the latest): rootfs nodes sync again; push nodes get only the files not yet in place, then --then',
    usage: 'deploy resume [JOB] [--detach] [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, detach: { type: 'boolean' }, json: { type: 'boolean' } },
    optionHelp: [['--detach', 'print the job id and return'], JSON_HELP, ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'deployResumeRun'),
  },
  {
    path: ['deploy', 'cancel'],
    summary: 'stop a running job (one started with --detach, or whose CLI went away): its rsync and ssh work is ended by PID, the job ends interrupted',
    usage: 'deploy cancel JOB [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' } },
    optionHelp: [['--json', 'print the stopped job as `lanctl deploy jobs JOB --json` does'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'deployCancelRun'),
  },
  {
    path: ['deploy', 'jobs'],
    positionalsMax: 1,
    summary: 'deploy jobs (the last 20) with their state, or one job per node; --follow watches one to its end',
    usage: 'deploy jobs [JOB [--follow]] [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' }, follow: { type: 'boolean', short: 'f' } },
    optionHelp: [['-f, --follow', 'follow JOB live to its end, as `deploy rootfs` does (Ctrl-C stops following; the job runs on)'], ['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'deployJobsRun'),
  },
  {
    path: ['nodes', 'trust'],
    summary: 'fetch a node\'s ssh host key, show its SHA256 fingerprint (as ssh-keygen -lf does) and pin it on confirm; a changed key is refused',
    usage: 'nodes trust NAME [--yes] [--replace] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, yes: { type: 'boolean', short: 'y' }, replace: { type: 'boolean' } },
    optionHelp: [['-y, --yes', 'pin without asking (compare the fingerprint out of band first)'], ['--replace', 'replace a pinned key that changed (a reinstalled node)'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-deploy.js'), 'nodesTrustRun'),
  },

  // internal
  {
    path: ['internal', 'ssh-gate'],
    summary: 'forced command for the sync user: read-only pulls of generations, checklists, sync reports (see cluster/deploy/README.md)',
    usage: 'internal ssh-gate [--config FILE]',
    options: { config: { type: 'string', short: 'c' } },
    optionHelp: [['-c, --config FILE', `the node's config (default ${DEFAULT_CONFIG})`]],
    run: lazy(() => import('./commands-internal.js'), 'sshGateRun'),
  },

  // ops
  {
    path: ['explain'],
    summary: 'why a client got its DHCP answer (subnet, reservation, boot rule, options, lease history) or which zone/source answers a name',
    usage: EXPLAIN_USAGE,
    options: {
      ...DAEMON_OPTIONS, json: { type: 'boolean' }, simulate: { type: 'boolean' }, mac: { type: 'string' }, arch: { type: 'string' },
      'vendor-class': { type: 'string' }, 'user-class': { type: 'string' }, 'client-id': { type: 'string' },
    },
    optionHelp: [
      ['--json', 'print JSON for scripts'],
      ['--simulate', 'run the DHCP core on a synthetic DISCOVER (sends nothing, holds nothing)'],
      ['--mac M', 'with --simulate: the client MAC'],
      ['--arch N', 'with --simulate: option 93 (0 BIOS, 7 x64 UEFI, 11 arm64 UEFI, ...)'],
      ['--vendor-class S', 'with --simulate: option 60 (PXEClient:..., U-Boot...)'],
      ['--user-class S', 'with --simulate: option 77 (iPXE)'],
      ['--client-id HEX', 'with --simulate: option 61 as hex'],
      ...DAEMON_OPTION_HELP,
    ],
    run: lazy(() => import('./commands-ops.js'), 'explainRun'),
  },
  {
    path: ['doctor'],
    summary: 'cross-check the node: quorum, lag, VIP holder, clock offsets, pools, reservations, DNS names, NTP, disk; one line per finding',
    usage: 'doctor [--offline] [--json] [--config FILE | --socket PATH]',
    options: { ...DAEMON_OPTIONS, json: { type: 'boolean' }, offline: { type: 'boolean' } },
    optionHelp: [['--offline', 'check the config file alone (no daemon needed)'], ['--json', 'print JSON for scripts'], ...DAEMON_OPTION_HELP],
    run: lazy(() => import('./commands-ops.js'), 'doctorRun'),
  },

  // demo
  {
    path: ['demo'],
    summary: 'show lanha working: as root a rack in network namespaces (two nodes, a witness, a VIP, failover and kill -9 with the gap per protocol), otherwise one node on loopback',
    usage: 'demo [--once] [--json] [--loopback] [--http-port N] [--base-port N]',
    options: { once: { type: 'boolean' }, json: { type: 'boolean' }, loopback: { type: 'boolean' }, 'http-port': { type: 'string' }, 'base-port': { type: 'string' } },
    optionHelp: [
      ['--loopback', 'as root too: one node on loopback instead of the namespace lab'],
      ['--once', 'exit after the summary instead of serving until Ctrl-C'],
      ['--json', 'print the steps and their results as JSON at the end'],
      ['--http-port N', 'the status pages\' port (default 7480)'],
      ['--base-port N', 'DHCP, DNS, TFTP and NTP listen on N+67, N+53, N+69, N+123 (default 10000)'],
    ],
    run: lazy(() => import('./commands-demo.js'), 'demoRun'),
  },
];
