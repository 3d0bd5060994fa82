import type { DeployConfig } from './config.js';

/** Whether this daemon's generation store keeps owners and devices in xattrs (deploy.fakeSuper). */
export function storeFakeSuper(deploy: Pick<DeployConfig, 'fakeSuper'>, uid: number | undefined = process.getuid?.()): boolean {
  return deploy.fakeSuper === 'auto' ? uid !== 0 : deploy.fakeSuper;
}
