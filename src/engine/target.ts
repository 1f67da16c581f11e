/**
 * A target is one export as the network sees it: it checks who may talk to
 * it (the config ACL, then the initiator-set MAC mask) and answers the four
 * AoE commands for its shelf/slot on every port it is attached to. ATA reads,
 * writes and flushes go to its queue (src/engine/ata-queue.ts); what
 * initiators set lives in src/engine/initiator-state.ts; its counters are
 * src/engine/stats.ts's.
 */
import type { Logger } from "pino";
import { Acl } from "../acl/acl.js";
import type { ExportConfig } from "../config/types.js";
import type { Backend } from "../io/backend.js";
import {
  AoeError,
  ATA_ABRT,
  AtaCmd,
  AtaStatus,
  BROADCAST_MAC,
  Command,
  ConfigCmd,
  MAX_CONFIG_STRING,
  MaskCmd,
  MaskDcmd,
  MaskError,
  maxMaskEntriesForMtu,
  ReserveCmd,
  SECTOR,
  VENDOR_COMMAND_MIN,
} from "../protocol/constants.js";
import {
  ataLength,
  ataTransfer,
  configLength,
  configString,
  maskLength,
  readAtaCommand,
  readCcmd,
  readCommand,
  readConfigLength,
  readDirectiveCmd,
  readDirectiveMac,
  readLba,
  readMaskCount,
  readMcmd,
  readRcmd,
  readReserveCount,
  readReserveMac,
  readSectorCount,
  reserveLength,
} from "../protocol/frame-readers.js";
import { buildIdentify } from "../protocol/identify.js";
import { readMac } from "../protocol/mac.js";
import {
  replyRoom,
  writeAnnounceHeader,
  writeAtaReply,
  writeConfigReply,
  writeErrorReply,
  writeMaskErrorReply,
  writeMaskReply,
  writePowerModeReply,
  writeReplyHeader,
  writeReserveReply,
} from "../protocol/reply-writers.js";
import { FIRMWARE_VERSION, VERSION } from "../version.js";
import { AtaQueue } from "./ata-queue.js";
import { emptyState, InitiatorState, type TargetState } from "./initiator-state.js";
import type { OpKind, Request } from "./request.js";
import type { FrameConsumer, ReplyPort } from "./seams.js";
import type { SharedAccessLists } from "./shared-state.js";
import {
  addTargetVector,
  countSyncs,
  newTargetStats,
  resetTargetStats,
  type TargetStats,
} from "./stats.js";

export class Target implements FrameConsumer {
  readonly name: string;
  readonly shelf: number;
  readonly slot: number;
  readonly key: number;
  readonly stats: TargetStats;
  private readonly initiators: InitiatorState;
  private readonly queue: AtaQueue;
  private readonly acl: Acl;
  private readonly sectors: number;
  private readonly identify: Buffer;
  private accepting = true;

  constructor(
    readonly cfg: ExportConfig,
    readonly backend: Backend,
    /** The largest sectors-per-request any of this target's ports can carry. */
    readonly maxSectors: number,
    log: Logger,
    /** On reload a replacement target carries its predecessor's state and counters. */
    carried: {
      state?: TargetState;
      stats?: TargetStats;
      onStateChange?: (state: TargetState) => void;
      lists?: SharedAccessLists;
    } = {},
  ) {
    this.stats = carried.stats ?? newTargetStats();
    this.initiators = new InitiatorState(
      cfg.name,
      log,
      carried.state ?? emptyState(),
      carried.onStateChange ?? (() => {}),
      carried.lists ?? null,
    );
    this.name = cfg.name;
    this.shelf = cfg.shelf;
    this.slot = cfg.slot;
    this.key = cfg.shelf * 256 + cfg.slot;
    this.acl = new Acl(cfg.acl);
    this.sectors = Math.floor(backend.size / SECTOR);
    this.identify = buildIdentify({
      sectors: this.sectors,
      serial: cfg.serial,
      model: cfg.model,
      firmware: VERSION,
      writeCache: cfg.writeCache,
    });
    const slotBytes = Math.max(1, this.maxSectorsFor(maxSectors)) * SECTOR;
    this.queue = new AtaQueue(cfg, backend, slotBytes, this.stats, log, this.ataComplete);
    // On a reload a replacement target may share the backend while the old one drains: one limit for both.
    backend.limitSyncBatch?.(cfg.queueLength);
  }

  get state(): TargetState {
    return this.initiators.state;
  }

  /** With worker threads: the mask and reservation every thread serving this export enforces. */
  get sharedLists(): SharedAccessLists | null {
    return this.initiators.lists;
  }

  /**
   * Worker thread `worker` (1-based) reports: `counts`, a targetVector()
   * difference, added into this target's counters; its requests in flight
   * and when the oldest of them started (epoch ms, 0: none).
   */
  workerReport(worker: number, counts: readonly number[], inFlight: number, oldest: number): void {
    addTargetVector(this.stats, counts);
    this.queue.reportElsewhere(worker, inFlight, oldest);
  }

  /** When the oldest request in flight on this thread started (epoch ms), 0 when none. */
  get oldestStart(): number {
    return this.queue.oldestStart;
  }

  /** Seconds since the oldest request in flight on any thread started; 0 when none. */
  get oldestRequestSeconds(): number {
    return this.queue.oldestRequestSeconds;
  }

  /** The backend has not completed a request for STUCK_AFTER_MS (src/engine/ata-queue.ts) or longer. */
  get stuck(): boolean {
    return this.queue.stuck;
  }

  /** Called periodically: logs once when the backend sticks and once when it recovers. */
  checkStuck(): void {
    this.queue.checkStuck();
  }

  get inFlight(): number {
    return this.queue.inFlight;
  }

  get sizeBytes(): number {
    return this.sectors * SECTOR;
  }

  /** How the export's I/O is done, as the logs report it when it opens. */
  get ioFacts(): {
    directIo: Backend["caps"]["directIo"];
    io: string;
    ioNote?: string;
    writesBuffered?: string;
  } {
    const caps = this.backend.caps;
    return {
      directIo: caps.directIo,
      io: caps.engine ?? this.cfg.io,
      ioNote: caps.engineNote,
      writesBuffered: caps.writesBuffered,
    };
  }

  /** Sectors per request on a port: the MTU's limit, capped by the export's `sectors`. */
  maxSectorsFor(portMax: number): number {
    return this.cfg.sectors > 0 ? Math.min(this.cfg.sectors, portMax) : portMax;
  }

  handle(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    len: number,
    src: number,
    broadcast: boolean,
  ): void {
    if (!this.acl.allows(src)) {
      this.stats.aclDenied++;
      return;
    }
    if (this.state.mask.length > 0 && !this.state.mask.includes(src)) {
      this.stats.maskDenied++;
      return;
    }
    if (!this.accepting) return;
    const cmd = readCommand(buf, off);
    switch (cmd) {
      case Command.ata:
        this.ata(port, buf, off, len, src);
        return;
      case Command.queryConfig:
        if (broadcast && !this.cfg.broadcast) return;
        this.queryConfig(port, buf, off, len);
        return;
      case Command.macMask:
        this.macMask(port, buf, off, len);
        return;
      case Command.reserve:
        this.reserveRelease(port, buf, off, len, src);
        return;
      default:
        // Vendor commands are not ours to interpret; anything else is a bad command.
        if (cmd < VENDOR_COMMAND_MIN)
          this.aoeError(port, buf, off, len, AoeError.unrecognizedCommand);
    }
  }

  // --- ATA ---------------------------------------------------------------

  private ata(port: ReplyPort, buf: Buffer, off: number, len: number, src: number): void {
    if (len < ataLength(0)) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const transfer = ataTransfer(buf, off);
    if (transfer !== null) {
      this.readWrite(port, buf, off, len, src, transfer);
      return;
    }
    switch (readAtaCommand(buf, off)) {
      case AtaCmd.flushCache:
      case AtaCmd.flushCacheExt:
        if (this.reservedAgainst(port, buf, off, len, src)) return;
        this.stats.flushes++;
        this.queue.submit(port, buf, off, "flush", 0, 0);
        return;
      case AtaCmd.identifyDevice:
        this.stats.identifies++;
        this.ataReply(port, buf, off, AtaStatus.ok, 0, this.identify, this.identify.length);
        return;
      case AtaCmd.checkPowerMode:
        this.stats.otherAta++;
        this.powerModeReply(port, buf, off);
        return;
      default:
        this.stats.otherAta++;
        this.ataAbort(port, buf, off);
    }
  }

  private readWrite(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    len: number,
    src: number,
    kind: OpKind,
  ): void {
    if (this.reservedAgainst(port, buf, off, len, src)) return;
    const count = readSectorCount(buf, off);
    const lba = readLba(buf, off);
    if (
      count === 0 ||
      count > this.maxSectorsFor(port.maxSectors) ||
      lba + count > this.sectors ||
      (kind === "write" && (this.backend.readOnly || len < ataLength(count)))
    ) {
      this.ataAbort(port, buf, off);
      return;
    }
    if (kind === "read") this.stats.reads++;
    else this.stats.writes++;
    this.queue.submit(port, buf, off, kind, lba, count);
  }

  /** Answers a completed read, write or flush on the port it came from. */
  private readonly ataComplete = (req: Request, err: NodeJS.ErrnoException | null): void => {
    const port = req.port!;
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, req.hdr, 0, port.macBytes, this.shelf, this.slot);
    if (err !== null) {
      port.commit(writeAtaReply(tx, req.hdr, 0, AtaStatus.error, ATA_ABRT, null, 0));
      return;
    }
    const bytes = req.kind === "read" ? req.count * SECTOR : 0;
    port.commit(writeAtaReply(tx, req.hdr, 0, AtaStatus.ok, 0, req.data, bytes));
  };

  /** ATA reads, writes and flushes from MACs outside a non-empty reservation get AoE error 6. */
  private reservedAgainst(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    len: number,
    src: number,
  ): boolean {
    const r = this.state.reserve;
    if (r.length === 0 || r.includes(src)) return false;
    this.aoeError(port, buf, off, len, AoeError.targetReserved);
    return true;
  }

  private ataAbort(port: ReplyPort, buf: Buffer, off: number): void {
    this.stats.ataErrors++;
    this.ataReply(port, buf, off, AtaStatus.error, ATA_ABRT, null, 0);
  }

  private ataReply(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    status: number,
    error: number,
    data: Buffer | null,
    dataLen: number,
  ): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port.macBytes, this.shelf, this.slot);
    port.commit(writeAtaReply(tx, buf, off, status, error, data, dataLen));
  }

  /** CHECK POWER MODE: always active or idle. */
  private powerModeReply(port: ReplyPort, buf: Buffer, off: number): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port.macBytes, this.shelf, this.slot);
    port.commit(writePowerModeReply(tx, buf, off));
  }

  // --- Query config ------------------------------------------------------

  private queryConfig(port: ReplyPort, buf: Buffer, off: number, len: number): void {
    this.stats.configs++;
    if (len < configLength(0)) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const ccmd = readCcmd(buf, off);
    if (ccmd === ConfigCmd.read) {
      this.configReply(port, buf, off, ccmd);
      return;
    }
    const slen = readConfigLength(buf, off);
    if (slen > MAX_CONFIG_STRING || configLength(slen) > len) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const theirs = configString(buf, off, slen);
    const ours = this.state.config;
    switch (ccmd) {
      case ConfigCmd.test:
        if (theirs.equals(ours)) this.configReply(port, buf, off, ccmd);
        return;
      case ConfigCmd.testPrefix:
        if (slen <= ours.length && theirs.equals(ours.subarray(0, slen)))
          this.configReply(port, buf, off, ccmd);
        return;
      case ConfigCmd.set:
        if (ours.length > 0 && !theirs.equals(ours)) {
          this.aoeError(port, buf, off, len, AoeError.configStringPresent);
          return;
        }
        this.initiators.setConfig(theirs);
        this.configReply(port, buf, off, ccmd);
        return;
      case ConfigCmd.forceSet:
        this.initiators.setConfig(theirs);
        this.configReply(port, buf, off, ccmd);
        return;
      default:
        this.aoeError(port, buf, off, len, AoeError.badArgument);
    }
  }

  private configReply(port: ReplyPort, buf: Buffer, off: number, ccmd: number): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port.macBytes, this.shelf, this.slot);
    port.commit(this.writeConfigBody(tx, port, ccmd));
  }

  private writeConfigBody(tx: Buffer, port: ReplyPort, ccmd: number): number {
    // A string set through a port with a larger MTU is cut to what this port's frame holds.
    return writeConfigReply(
      tx,
      replyRoom(tx, port.mtu),
      this.cfg.queueLength,
      FIRMWARE_VERSION,
      this.maxSectorsFor(port.maxSectors),
      ccmd,
      this.state.config,
    );
  }

  /**
   * Unsolicited config response so initiators find the export without asking:
   * broadcast, or unicast to each accepted MAC when the ACL rejects everyone else.
   */
  announce(port: ReplyPort): void {
    const unicast = this.acl.announceTargets();
    // An export hidden from broadcast discovery is not broadcast at start either.
    if (unicast === null && !this.cfg.broadcast) return;
    const dsts = unicast ?? [readMac(BROADCAST_MAC, 0)];
    for (const dst of dsts) {
      const tx = port.acquire();
      if (tx === null) return;
      writeAnnounceHeader(tx, dst, port.macBytes, this.shelf, this.slot);
      port.commit(this.writeConfigBody(tx, port, ConfigCmd.read));
    }
  }

  // --- MAC mask list -----------------------------------------------------

  private macMask(port: ReplyPort, buf: Buffer, off: number, len: number): void {
    this.stats.masks++;
    if (len < maskLength(0)) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const mcmd = readMcmd(buf, off);
    const count = readMaskCount(buf, off);
    if (mcmd === MaskCmd.read) {
      this.maskReply(port, buf, off, mcmd, 0, this.state.mask);
      return;
    }
    if (mcmd !== MaskCmd.edit || maskLength(count) > len) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const capacity = maxMaskEntriesForMtu(port.mtu);
    const list = [...this.state.mask];
    for (let i = 0; i < count; i++) {
      const dcmd = readDirectiveCmd(buf, off, i);
      const mac = readDirectiveMac(buf, off, i);
      let failure = 0;
      if (dcmd === MaskDcmd.add) {
        if (!list.includes(mac)) {
          if (list.length >= capacity) failure = MaskError.listFull;
          else list.push(mac);
        }
      } else if (dcmd === MaskDcmd.delete) {
        const at = list.indexOf(mac);
        if (at >= 0) list.splice(at, 1);
      } else if (dcmd !== MaskDcmd.none) failure = MaskError.badDirective;
      if (failure !== 0) {
        // Directives before the failing one stay applied; the count names the failing one,
        // and the reply echoes the directives before it as sent.
        this.initiators.setMask(list);
        this.maskErrorReply(port, buf, off, failure, i);
        return;
      }
    }
    this.initiators.setMask(list);
    this.maskReply(port, buf, off, mcmd, 0, list);
  }

  private maskReply(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    mcmd: number,
    merror: number,
    list: number[],
  ): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port.macBytes, this.shelf, this.slot);
    // A list grown through a port with a larger MTU is answered with what this port's frame holds.
    port.commit(writeMaskReply(tx, replyRoom(tx, port.mtu), mcmd, merror, list));
  }

  /** An edit failed at directive `index`: merror, the count naming it, the directives before it. */
  private maskErrorReply(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    merror: number,
    index: number,
  ): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port.macBytes, this.shelf, this.slot);
    port.commit(writeMaskErrorReply(tx, buf, off, merror, index));
  }

  // --- Reserve / release -------------------------------------------------

  private reserveRelease(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    len: number,
    src: number,
  ): void {
    this.stats.reserves++;
    if (len < reserveLength(0)) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const rcmd = readRcmd(buf, off);
    const count = readReserveCount(buf, off);
    if (rcmd === ReserveCmd.read) {
      this.reserveReply(port, buf, off, rcmd);
      return;
    }
    if ((rcmd !== ReserveCmd.set && rcmd !== ReserveCmd.forceSet) || reserveLength(count) > len) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const current = this.state.reserve;
    if (rcmd === ReserveCmd.set && current.length > 0 && !current.includes(src)) {
      this.aoeError(port, buf, off, len, AoeError.targetReserved);
      return;
    }
    const macs: number[] = [];
    for (let i = 0; i < count; i++) {
      const mac = readReserveMac(buf, off, i);
      if (!macs.includes(mac)) macs.push(mac);
    }
    this.initiators.setReserve(macs, src);
    this.reserveReply(port, buf, off, rcmd);
  }

  private reserveReply(port: ReplyPort, buf: Buffer, off: number, rcmd: number): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port.macBytes, this.shelf, this.slot);
    // A list set through a port with a larger MTU is answered with what this port's frame holds.
    port.commit(writeReserveReply(tx, replyRoom(tx, port.mtu), rcmd, this.state.reserve));
  }

  // --- Errors and lifecycle -----------------------------------------------

  /** A reply with the AoE error flag: the request's header and argument echoed back. */
  private aoeError(port: ReplyPort, buf: Buffer, off: number, len: number, code: number): void {
    this.stats.aoeErrors++;
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port.macBytes, this.shelf, this.slot);
    port.commit(writeErrorReply(tx, buf, off, len, code));
  }

  /** The admin's reset of what initiators set (aoectl clear). */
  clearState(what: "config" | "mask" | "reserve"): void {
    this.initiators.clear(what);
  }

  /**
   * The export's counters, with what its backend's group commit has done
   * since they were last read folded in: the one way metrics, the control
   * socket and the worker reports read them.
   */
  counters(): TargetStats {
    countSyncs(this.stats, this.backend.syncStats);
    return this.stats;
  }

  /** `aoectl clear stats`: syncs done so far are folded in first, so they are cleared too. */
  resetStats(): void {
    countSyncs(this.stats, this.backend.syncStats);
    resetTargetStats(this.stats);
  }

  /** Stops taking requests and resolves once every request in flight has been answered and an open error burst summarized. */
  drain(): Promise<void> {
    this.accepting = false;
    return this.queue.drain();
  }
}
