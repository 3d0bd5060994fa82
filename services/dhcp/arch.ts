// RFC 4578 §2.1 client system architecture (DHCP option 93, DHCPv6 option 61): the IANA
// "Processor Architecture Types" registry (dhcpv6-parameters), number -> name as IANA writes it.
// One table, used wherever an operator sees an arch: `lanctl nodes pending`, the pending JSON.
// U-Boot's distro boot sends 22 (0x16, "arm 64 uboot") on armv8, 21 on 32-bit ARM.

/** IANA Processor Architecture Types, by type number. */
export const PROCESSOR_ARCHITECTURES: ReadonlyMap<number, string> = new Map([
  [0x00, 'x86 BIOS'],
  [0x01, 'NEC/PC98 (deprecated)'],
  [0x02, 'Itanium'],
  [0x03, 'DEC Alpha (deprecated)'],
  [0x04, 'Arc x86 (deprecated)'],
  [0x05, 'Intel Lean Client (deprecated)'],
  [0x06, 'x86 UEFI'],
  [0x07, 'x64 UEFI'],
  [0x08, 'EFI Xscale (deprecated)'],
  [0x09, 'EBC'],
  [0x0a, 'ARM 32-bit UEFI'],
  [0x0b, 'ARM 64-bit UEFI'],
  [0x0c, 'PowerPC Open Firmware'],
  [0x0d, 'PowerPC ePAPR'],
  [0x0e, 'POWER OPAL v3'],
  [0x0f, 'x86 uefi boot from http'],
  [0x10, 'x64 uefi boot from http'],
  [0x11, 'ebc boot from http'],
  [0x12, 'arm uefi 32 boot from http'],
  [0x13, 'arm uefi 64 boot from http'],
  [0x14, 'pc/at bios boot from http'],
  [0x15, 'arm 32 uboot'],
  [0x16, 'arm 64 uboot'],
  [0x17, 'arm uboot 32 boot from http'],
  [0x18, 'arm uboot 64 boot from http'],
  [0x19, 'RISC-V 32-bit UEFI'],
  [0x1a, 'RISC-V 32-bit UEFI boot from http'],
  [0x1b, 'RISC-V 64-bit UEFI'],
  [0x1c, 'RISC-V 64-bit UEFI boot from http'],
  [0x1d, 'RISC-V 128-bit UEFI'],
  [0x1e, 'RISC-V 128-bit UEFI boot from http'],
  [0x1f, 's390 Basic'],
  [0x20, 's390 Extended'],
  [0x21, 'MIPS 32-bit UEFI'],
  [0x22, 'MIPS 64-bit UEFI'],
  [0x23, 'Sunway 32-bit UEFI'],
  [0x24, 'Sunway 64-bit UEFI'],
  [0x25, 'LoongArch 32-bit UEFI'],
  [0x26, 'LoongArch 32-bit UEFI boot from http'],
  [0x27, 'LoongArch 64-bit UEFI'],
  [0x28, 'LoongArch 64-bit UEFI boot from http'],
  [0x29, 'arm rpiboot'],
]);

/** The registry's name of an architecture type, or undefined for a number IANA has not assigned. */
export function archName(arch: number): string | undefined {
  return PROCESSOR_ARCHITECTURES.get(arch);
}

/** What an operator reads: "arm 64 uboot (22)", or "65000 (unassigned)". */
export function archText(arch: number): string {
  return `${archName(arch) ?? 'unassigned'} (${arch})`;
}
