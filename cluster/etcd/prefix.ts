import type { EtcdConfig } from './config.js';

/** The key prefix of a site: the configured one, else `/lanha/<cluster.id>/`. */
export function etcdPrefix(config: EtcdConfig, clusterId: string): string {
  return config.prefix ?? `/lanha/${clusterId}/`;
}
