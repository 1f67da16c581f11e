/** AoE r11 wire constants. Offsets are bytes from the start of the Ethernet frame. */

export const ETHERTYPE_AOE = 0x88a2;
export const AOE_VERSION = 1;

/** Ethernet requires 60 bytes before the FCS; veth, tap and lo do not pad for us. */
export const MIN_FRAME = 60;
export const ETH_HEADER = 14;
export const AOE_HEADER = 24;
export const ATA_HEADER = 36;
export const CONFIG_HEADER = 32;
export const SECTOR = 512;

export const BROADCAST_SHELF = 0xffff;
export const BROADCAST_SLOT = 0xff;
export const BROADCAST_MAC = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

export const Off = {
  dst: 0,
  src: 6,
  etherType: 12,
  verFlags: 14,
  error: 15,
  shelf: 16,
  slot: 18,
  command: 19,
  tag: 20,
  arg: 24,
} as const;

export const Flag = {
  response: 0x08,
  error: 0x04,
} as const;

export const Command = {
  ata: 0,
  queryConfig: 1,
  macMask: 2,
  reserve: 3,
} as const;
export const VENDOR_COMMAND_MIN = 0xf0;

export const AoeError = {
  unrecognizedCommand: 1,
  badArgument: 2,
  deviceUnavailable: 3,
  configStringPresent: 4,
  unsupportedVersion: 5,
  targetReserved: 6,
} as const;

/** What each AoE error code means, as r11 names it. */
export const AOE_ERROR_TEXT: Readonly<Record<number, string>> = {
  [AoeError.unrecognizedCommand]: "unrecognized command",
  [AoeError.badArgument]: "bad argument",
  [AoeError.deviceUnavailable]: "device unavailable",
  [AoeError.configStringPresent]: "config string present",
  [AoeError.unsupportedVersion]: "unsupported version",
  [AoeError.targetReserved]: "target reserved",
};

/** ATA argument: aflags bits. */
export const AtaFlag = {
  lba48: 0x40,
  device: 0x10,
  async: 0x02,
  write: 0x01,
} as const;

export const AtaOff = {
  aflags: 24,
  errFeature: 25,
  sectorCount: 26,
  cmdStatus: 27,
  lba: 28,
  /** Two reserved bytes after the 6 LBA bytes: zero in every reply. */
  reserved: 34,
  data: 36,
} as const;

export const AtaCmd = {
  readSectors: 0x20,
  readSectorsExt: 0x24,
  writeSectors: 0x30,
  writeSectorsExt: 0x34,
  checkPowerMode: 0xe5,
  flushCache: 0xe7,
  flushCacheExt: 0xea,
  identifyDevice: 0xec,
} as const;

export const AtaStatus = {
  ok: 0x40, // DRDY
  error: 0x41, // DRDY | ERR
} as const;
/** ATA status register: the ERR bit. */
export const ATA_STATUS_ERR = 0x01;
/** CHECK POWER MODE's answer in the sector count: active or idle. */
export const ATA_POWER_ACTIVE = 0xff;
/** Without the E (LBA48) flag the LBA is 28 bits; initiators put device-register bits above. */
export const LBA28_MASK = 0x0fffffff;
/** ATA error register: command aborted. */
export const ATA_ABRT = 0x04;

export const ConfigOff = {
  bufferCount: 24,
  firmware: 26,
  maxSectors: 28,
  verCcmd: 29,
  stringLength: 30,
  string: 32,
} as const;
export const MAX_CONFIG_STRING = 1024;

export const ConfigCmd = {
  read: 0,
  test: 1,
  testPrefix: 2,
  set: 3,
  forceSet: 4,
} as const;

export const MaskOff = {
  reserved: 24,
  mcmd: 25,
  merror: 26,
  count: 27,
  directives: 28,
} as const;
export const MaskCmd = { read: 0, edit: 1 } as const;
export const MaskError = { unspecified: 1, badDirective: 2, listFull: 3 } as const;
export const MaskDcmd = { none: 0, add: 1, delete: 2 } as const;
/** Directives are 8 bytes: reserved, dcmd, MAC. */
export const MASK_DIRECTIVE_SIZE = 8;
/** Offsets within one directive. */
export const DirectiveOff = { dcmd: 1, mac: 2 } as const;

export const ReserveOff = {
  rcmd: 24,
  count: 25,
  macs: 26,
} as const;
export const MAC_SIZE = 6;
export const ReserveCmd = { read: 0, set: 1, forceSet: 2 } as const;

/**
 * Sectors per ATA request at this MTU: (MTU - 36) / 512, the rule every
 * initiator applies (2 at 1500, 17 at 9000), capped by the 8-bit count field.
 */
export function maxSectorsForMtu(mtu: number): number {
  return Math.max(0, Math.min(255, Math.floor((mtu - ATA_HEADER) / SECTOR)));
}

/** MAC mask entries one frame at this MTU can list, capped by the 8-bit count field. */
export function maxMaskEntriesForMtu(mtu: number): number {
  return Math.min(255, Math.floor((mtu + ETH_HEADER - MaskOff.directives) / MASK_DIRECTIVE_SIZE));
}
