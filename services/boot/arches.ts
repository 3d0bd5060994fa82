/** Architectures a profile can boot; they pick U-Boot's boot command and the image's arch octet. */
export const PROFILE_ARCHES = ['arm', 'arm64', 'riscv64', 'x86_64'] as const;
export type ProfileArch = typeof PROFILE_ARCHES[number];
