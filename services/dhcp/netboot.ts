import { isRaspberryPi } from '../../lib/mac.js';
import type { Ipv4 } from '../../lib/ipv4.js';
import type { ClientRequest } from './request.js';

// Netboot policy: which next-server (siaddr, option 66) and bootfile (file, option 67) a booting
// client gets, from ordered rules matched on client arch (option 93, RFC 4578), vendor class (60),
// user class (77), MAC and the Raspberry Pi OUIs. First matching rule wins. Pure: no I/O.
//
// iPXE loops: iPXE chain-loaded from PXE firmware sends DHCP again with user class "iPXE"; if it got
// the iPXE binary again it would load itself forever. Put a `userClass: iPXE` rule (a script) first.

export interface BootMatch {
  arch?: readonly number[] | undefined;
  /** Prefix of option 60: "PXEClient" matches "PXEClient:Arch:00007:UNDI:003016", "U-Boot" matches "U-Boot.armv8". */
  vendorClass?: string | undefined;
  /** One of the client's user classes (option 77), exactly: "iPXE". */
  userClass?: string | undefined;
  mac?: readonly string[] | undefined;
  raspberryPi?: boolean | undefined;
}

export interface BootRule {
  name?: string | undefined;
  match: BootMatch;
  nextServer?: Ipv4 | undefined;
  bootfile: string;
}

export interface BootPlan {
  /** The rule's name, or "rule <n>", for logs and explain output. */
  rule: string;
  nextServer: Ipv4;
  bootfile: string;
  /** Option 60 "PXEClient" echoed: PXE firmware ignores offers without it (PXE 2.1 §2.2.1). */
  pxeClient: boolean;
  /**
   * Option 60 "HTTPClient" echoed to a UEFI HTTP boot client (vendor class HTTPClient:Arch:...):
   * its firmware takes the boot file (a URL) only from an offer that says HTTPClient (UEFI 2.x,
   * HTTP Boot; EDK2's HttpBootDxe).
   */
  httpClient?: boolean;
  /** Option 43: the Raspberry Pi boot menu for a Pi, else PXE_BOOT_FILE_OPTION_43 for PXE firmware. */
  vendorSpecific?: Uint8Array;
}

/** First rule whose every given condition holds; a rule with no conditions matches everyone. */
export function matchBootRule(request: ClientRequest, rules: readonly BootRule[]): { rule: BootRule; index: number } | null {
  for (let index = 0; index < rules.length; index++) {
    const rule = rules[index]!;
    const m = rule.match;
    if (m.arch !== undefined && (request.arch === undefined || !m.arch.includes(request.arch))) continue;
    if (m.vendorClass !== undefined && !(request.vendorClass ?? '').startsWith(m.vendorClass)) continue;
    if (m.userClass !== undefined && !request.userClasses.includes(m.userClass)) continue;
    if (m.mac !== undefined && !m.mac.includes(request.mac)) continue;
    if (m.raspberryPi !== undefined && isRaspberryPi(request.mac) !== m.raspberryPi) continue;
    return { rule, index };
  }
  return null;
}

/**
 * The Raspberry Pi boot ROM only accepts an offer whose option 43 carries a PXE boot menu entry
 * "Raspberry Pi Boot" (Raspberry Pi network boot documentation; dnsmasq's `pxe-service=0,"Raspberry
 * Pi Boot"` produces the same sub-options): 6 discovery control = 3, 10 menu prompt (timeout 0,
 * "PXE"), 9 boot menu (type 0, "Raspberry Pi Boot"), END.
 */
export const RASPBERRY_PI_OPTION_43: Uint8Array = (() => {
  const text = new TextEncoder().encode('Raspberry Pi Boot');
  return Uint8Array.from([6, 1, 3, 10, 4, 0, 0x50, 0x58, 0x45, 9, 3 + text.length, 0, 0, text.length, ...text, 255]);
})();

/**
 * Option 43 beside the echoed "PXEClient" of any other PXE client: sub-option 6 (PXE_DISCOVERY_CONTROL)
 * = 8, "a boot file name is in the offer: download it, no boot menu, no boot server discovery" (PXE
 * 2.1 table 2-1), END; dnsmasq sends the same. An offer with "PXEClient" but no option 43 is, to
 * UEFI PXE (EDK2's PxeBcDxe, so OVMF and most server firmware), a BINL offer: it asks a boot server
 * on port 4011 for the file, hears nothing from lanha, and gives up with "PXE-E16: No valid offer
 * received" although the offer named the file.
 */
export const PXE_BOOT_FILE_OPTION_43: Uint8Array = Uint8Array.of(6, 1, 8, 255);

/** The boot plan for a request, or null when no rule matches and the client is no Pi. */
export function planBoot(request: ClientRequest, rules: readonly BootRule[], defaultNextServer: Ipv4): BootPlan | null {
  const matched = matchBootRule(request, rules);
  const pxeClient = (request.vendorClass ?? '').startsWith('PXEClient');
  const pi = pxeClient && isRaspberryPi(request.mac);
  if (!matched && !pi) return null;
  const plan: BootPlan = {
    rule: matched ? (matched.rule.name ?? `rule ${matched.index}`) : 'raspberry-pi-default',
    nextServer: matched?.rule.nextServer ?? defaultNextServer,
    // The Pi 3 ROM asks TFTP for bootcode.bin whatever the file field says; later ROMs use start4.elf etc.
    bootfile: matched?.rule.bootfile ?? 'bootcode.bin',
    pxeClient,
  };
  if (matched && (request.vendorClass ?? '').startsWith('HTTPClient')) plan.httpClient = true;
  if (pi) plan.vendorSpecific = RASPBERRY_PI_OPTION_43;
  else if (pxeClient) plan.vendorSpecific = PXE_BOOT_FILE_OPTION_43;
  return plan;
}
