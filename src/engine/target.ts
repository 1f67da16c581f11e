/**
 * A target is one export: it answers the four AoE commands for its
 * shelf/slot on every port it is attached to, and runs ATA I/O against its
 * backend with a fixed pool of request slots (the queue length).
 */
import type { Logger } from "pino";
import { Acl } from "../acl/acl.js";
import type { ExportConfig } from "../config/types.js";
import type { Backend } from "../io/backend.js";
import {
  AoeError,
  ATA_ABRT,
  ATA_HEADER,
  AtaCmd,
  AtaFlag,
  AtaOff,
  AtaStatus,
  BROADCAST_MAC,
  CONFIG_HEADER,
  Command,
  ConfigCmd,
  ConfigOff,
  Flag,
  MASK_DIRECTIVE_SIZE,
  MAX_CONFIG_STRING,
  MaskCmd,
  MaskDcmd,
  MaskError,
  MaskOff,
  Off,
  ReserveCmd,
  ReserveOff,
  SECTOR,
  VENDOR_COMMAND_MIN,
} from "../protocol/constants.js";
import { buildIdentify } from "../protocol/identify.js";
import { macToString, readMac, writeMac } from "../protocol/mac.js";
import { FIRMWARE_VERSION, VERSION } from "../version.js";
import { copySmall } from "./bytes.js";
import { LatencyHistogram } from "./latency.js";
import type { ReplyPort } from "./port.js";
import { type OpKind, Request } from "./request.js";
import type { SharedAccessLists } from "./shared-state.js";

/** How long a burst of backend errors is summarized before the next one is logged in full. */
const BURST_MS = 10_000;

/** A request in flight this long means the backend is stuck (logged, shown, exported). */
export const STUCK_AFTER_MS = 3000;

export interface TargetStats {
  reads: number;
  writes: number;
  flushes: number;
  identifies: number;
  otherAta: number;
  configs: number;
  masks: number;
  reserves: number;
  bytesRead: number;
  bytesWritten: number;
  /** ATA commands answered with ABRT. */
  ataErrors: number;
  /** Requests dropped because every queue slot was busy. */
  queueDrops: number;
  aclDenied: number;
  maskDenied: number;
  /** AoE-level error replies (bad argument, reserved, unknown command...). */
  aoeErrors: number;
  /** Backend time of reads, writes and flushes. */
  latency: LatencyHistogram;
  /** The same, per operation (the metric's `op` label). */
  opLatency: Record<OpKind, LatencyHistogram>;
}

export function newTargetStats(): TargetStats {
  return {
    reads: 0,
    writes: 0,
    flushes: 0,
    identifies: 0,
    otherAta: 0,
    configs: 0,
    masks: 0,
    reserves: 0,
    bytesRead: 0,
    bytesWritten: 0,
    ataErrors: 0,
    queueDrops: 0,
    aclDenied: 0,
    maskDenied: 0,
    aoeErrors: 0,
    latency: new LatencyHistogram(),
    opLatency: {
      read: new LatencyHistogram(),
      write: new LatencyHistogram(),
      flush: new LatencyHistogram(),
    },
  };
}

/** What an initiator can set on an export at run time; persisted by the state store. */
export interface TargetState {
  config: Buffer;
  mask: number[];
  reserve: number[];
}

export class Target {
  readonly name: string;
  readonly shelf: number;
  readonly slot: number;
  readonly key: number;
  readonly stats: TargetStats;
  private current: TargetState;
  private readonly onStateChange: (state: TargetState) => void;
  /** With worker threads: the mask and reservation every thread serving this export enforces. */
  readonly sharedLists: SharedAccessLists | null;
  private listsVersion = -1;
  private readonly acl: Acl;
  private readonly sectors: number;
  private readonly identify: Buffer;
  /** Idle request slots; more are made on demand up to the queue length, so idle exports cost little memory. */
  private readonly free: Request[] = [];
  /** Every request slot made: the ones with a port are in flight. */
  private readonly all: Request[] = [];
  private slots = 0;
  /** Requests handed to the backend and not completed: at most its issueLimit. */
  private issued = 0;
  private readonly issueLimit: number;
  /** Requests in their slots waiting for the backend to take them, oldest first. */
  private readonly waiting: Request[] = [];
  /** When (performance.now()) the oldest request of the current stall started; null while none is stuck. */
  private stuckSince: number | null = null;
  private readonly slotBytes: number;
  private inflight = 0;
  private accepting = true;
  private drained: (() => void) | null = null;

  constructor(
    readonly cfg: ExportConfig,
    readonly backend: Backend,
    /** The largest sectors-per-request any of this target's ports can carry. */
    readonly maxSectors: number,
    private readonly log: Logger,
    /** On reload a replacement target carries its predecessor's state and counters. */
    carried: {
      state?: TargetState;
      stats?: TargetStats;
      onStateChange?: (state: TargetState) => void;
      lists?: SharedAccessLists;
    } = {},
  ) {
    this.current = carried.state ?? { config: Buffer.alloc(0), mask: [], reserve: [] };
    this.stats = carried.stats ?? newTargetStats();
    this.onStateChange = carried.onStateChange ?? (() => {});
    this.sharedLists = carried.lists ?? null;
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
    this.slotBytes = Math.max(1, this.maxSectorsFor(maxSectors)) * SECTOR;
    this.issueLimit = backend.issueLimit ?? Number.POSITIVE_INFINITY;
  }

  get state(): TargetState {
    const lists = this.sharedLists;
    if (lists !== null && lists.version !== this.listsVersion) {
      const { version, mask, reserve } = lists.read();
      this.listsVersion = version;
      this.current = { ...this.current, mask, reserve };
    }
    return this.current;
  }

  private setState(next: TargetState): void {
    this.current = next;
    if (this.sharedLists !== null) {
      this.sharedLists.publish(next.mask, next.reserve);
      this.listsVersion = this.sharedLists.version;
    }
    this.onStateChange(next);
  }

  /** Requests of this target in flight in each worker thread, as last reported. */
  readonly inFlightElsewhere: number[] = [];
  /**
   * When each worker thread's oldest request of this target started, as last
   * reported (epoch milliseconds, performance.timeOrigin-based; 0 when none).
   */
  readonly oldestElsewhere: number[] = [];

  /** When the oldest request in flight on this thread started (epoch ms), 0 when none. */
  get oldestStart(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const r of this.all) if (r.port !== null && r.startedAt < oldest) oldest = r.startedAt;
    return oldest === Number.POSITIVE_INFINITY ? 0 : performance.timeOrigin + oldest;
  }

  /** Seconds since the oldest request in flight on any thread started; 0 when none. */
  get oldestRequestSeconds(): number {
    let oldest = this.oldestStart;
    for (const w of this.oldestElsewhere) if (w > 0 && (oldest === 0 || w < oldest)) oldest = w;
    return oldest === 0 ? 0 : (performance.timeOrigin + performance.now() - oldest) / 1000;
  }

  /** The backend has not completed a request for STUCK_AFTER_MS or longer. */
  get stuck(): boolean {
    return this.stuckSince !== null;
  }

  /**
   * Called periodically: logs once when a request has been in flight for
   * STUCK_AFTER_MS (the backend hangs) and once when that is over.
   */
  checkStuck(): void {
    const age = this.oldestRequestSeconds;
    if (this.stuckSince === null && age * 1000 >= STUCK_AFTER_MS) {
      this.stuckSince = performance.now() - age * 1000;
      this.log.warn(
        {
          export: this.name,
          path: this.backend.path,
          oldestSeconds: Math.round(age * 10) / 10,
          inFlight: this.inFlight,
          queueLength: this.cfg.queueLength,
        },
        "backend stuck: requests are not completing; new ones beyond the queue length are dropped",
      );
    } else if (this.stuckSince !== null && age * 1000 < STUCK_AFTER_MS) {
      const seconds = (performance.now() - this.stuckSince) / 1000;
      this.stuckSince = null;
      this.log.info(
        { export: this.name, path: this.backend.path, stuckSeconds: Math.round(seconds * 10) / 10 },
        "backend recovered: requests are completing again",
      );
    }
  }

  get inFlight(): number {
    let n = this.inflight;
    for (const w of this.inFlightElsewhere) n += w;
    return n;
  }

  get sizeBytes(): number {
    return this.sectors * SECTOR;
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
    const cmd = buf[off + Off.command]!;
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
    if (len < ATA_HEADER) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const cmd = buf[off + AtaOff.cmdStatus]!;
    switch (cmd) {
      case AtaCmd.readSectors:
      case AtaCmd.readSectorsExt:
        this.readWrite(port, buf, off, len, src, "read");
        return;
      case AtaCmd.writeSectors:
      case AtaCmd.writeSectorsExt:
        this.readWrite(port, buf, off, len, src, "write");
        return;
      case AtaCmd.flushCache:
      case AtaCmd.flushCacheExt:
        if (this.reservedAgainst(port, buf, off, len, src)) return;
        this.stats.flushes++;
        this.submit(port, buf, off, "flush", 0, 0);
        return;
      case AtaCmd.identifyDevice:
        this.stats.identifies++;
        this.ataReply(port, buf, off, AtaStatus.ok, 0, this.identify, 512);
        return;
      case AtaCmd.checkPowerMode:
        // Sector count 0xFF: active or idle.
        this.stats.otherAta++;
        this.ataReply(port, buf, off, AtaStatus.ok, 0, null, 0, 0xff);
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
    const count = buf[off + AtaOff.sectorCount]!;
    const lba =
      buf[off + AtaOff.aflags]! & AtaFlag.lba48
        ? buf.readUIntLE(off + AtaOff.lba, 6)
        : buf.readUInt32LE(off + AtaOff.lba) & 0x0fffffff; // top nibble carries device-register bits
    const bytes = count * SECTOR;
    if (
      count === 0 ||
      count > this.maxSectorsFor(port.maxSectors) ||
      lba + count > this.sectors ||
      (kind === "write" && (this.backend.readOnly || len < ATA_HEADER + bytes))
    ) {
      this.ataAbort(port, buf, off);
      return;
    }
    if (kind === "read") this.stats.reads++;
    else this.stats.writes++;
    this.submit(port, buf, off, kind, lba, count);
  }

  /** Takes a queue slot and starts the backend operation; drops the request if none is free. */
  private submit(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    kind: OpKind,
    lba: number,
    count: number,
  ): void {
    let req = this.free.pop();
    if (req === undefined) {
      if (this.slots >= this.cfg.queueLength) {
        this.stats.queueDrops++;
        return;
      }
      req = new Request(this.backend.allocBuffer(this.slotBytes), this.complete);
      this.all.push(req);
      this.slots++;
    }
    this.inflight++;
    req.start(port, buf, off, kind, lba, count);
    // Copied now: the receive slot goes back to the kernel when this returns.
    if (kind === "write")
      buf.copy(req.data, 0, off + ATA_HEADER, off + ATA_HEADER + count * SECTOR);
    if (this.issued < this.issueLimit) this.issue(req);
    else this.waiting.push(req);
  }

  private issue(req: Request): void {
    this.issued++;
    const bytes = req.count * SECTOR;
    switch (req.kind) {
      case "read":
        this.backend.read(req.data, bytes, req.lba * SECTOR, req.done);
        return;
      case "write":
        this.backend.write(req.data, bytes, req.lba * SECTOR, req.done);
        return;
      case "flush":
        this.backend.flush(req.done);
        return;
    }
  }

  private readonly complete = (req: Request, err: NodeJS.ErrnoException | null): void => {
    this.issued--;
    const next = this.waiting.shift();
    if (next !== undefined) this.issue(next);
    const port = req.port!;
    const bytes = req.count * SECTOR;
    if (err) {
      this.stats.ataErrors++;
      this.ioErrorBurst(req, err);
    } else if (req.kind === "read") this.stats.bytesRead += bytes;
    else if (req.kind === "write") this.stats.bytesWritten += bytes;
    const seconds = (performance.now() - req.startedAt) / 1000;
    this.stats.latency.observe(seconds);
    this.stats.opLatency[req.kind].observe(seconds);
    if (this.cfg.traceIo) this.trace(req, err, seconds);
    const tx = port.acquire();
    if (tx !== null) {
      const ok = err === null;
      writeReplyHeader(tx, req.hdr, 0, port, this, ATA_HEADER);
      tx.writeUInt16BE(0, ATA_RESERVED); // reserved: zero, whatever the request carried
      tx[AtaOff.errFeature] = ok ? 0 : ATA_ABRT;
      tx[AtaOff.cmdStatus] = ok ? AtaStatus.ok : AtaStatus.error;
      let frameLen = ATA_HEADER;
      if (ok && req.kind === "read") {
        req.data.copy(tx, ATA_HEADER, 0, bytes);
        frameLen += bytes;
      }
      port.commit(frameLen);
    }
    req.port = null;
    this.free.push(req);
    this.inflight--;
    if (this.inflight === 0 && this.drained) this.drained();
  };

  /**
   * A failing disk fails every request: log the first error of a burst with
   * its details, then one summary when the burst is over, not a line per request.
   */
  private ioErrorBurst(req: Request, err: NodeJS.ErrnoException): void {
    if (this.burst === null) {
      this.log.error(
        { export: this.name, op: req.kind, lba: req.lba, sectors: req.count, err: err.message },
        "backend I/O error: answering ABRT",
      );
      this.burst = { count: 0, timer: setTimeout(this.endBurst, BURST_MS) };
      this.burst.timer.unref();
    }
    this.burst.count++;
  }

  private burst: { count: number; timer: NodeJS.Timeout } | null = null;

  private readonly endBurst = (): void => {
    const count = this.burst?.count ?? 0;
    this.burst = null;
    if (count > 1)
      this.log.error(
        { export: this.name, errors: count, seconds: BURST_MS / 1000 },
        "backend I/O errors",
      );
  };

  private trace(req: Request, err: NodeJS.ErrnoException | null, seconds: number): void {
    this.log.info(
      {
        export: this.name,
        tag: req.hdr.readUInt32BE(Off.tag),
        mac: macToString(readMac(req.hdr, Off.src)),
        op: req.kind,
        lba: req.lba,
        sectors: req.count,
        result: err ? `error: ${err.message}` : "ok",
        latencyUs: Math.round(seconds * 1e6),
      },
      "io",
    );
  }

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
    sectorCount?: number,
  ): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port, this, ATA_HEADER);
    tx.writeUInt16BE(0, ATA_RESERVED);
    tx[AtaOff.errFeature] = error;
    tx[AtaOff.cmdStatus] = status;
    if (sectorCount !== undefined) tx[AtaOff.sectorCount] = sectorCount;
    if (data !== null) data.copy(tx, ATA_HEADER, 0, dataLen);
    port.commit(ATA_HEADER + dataLen);
  }

  // --- Query config ------------------------------------------------------

  private queryConfig(port: ReplyPort, buf: Buffer, off: number, len: number): void {
    this.stats.configs++;
    if (len < CONFIG_HEADER) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const ccmd = buf[off + ConfigOff.verCcmd]! & 0x0f;
    if (ccmd === ConfigCmd.read) {
      this.configReply(port, buf, off, ccmd);
      return;
    }
    const slen = buf.readUInt16BE(off + ConfigOff.stringLength);
    if (slen > MAX_CONFIG_STRING || CONFIG_HEADER + slen > len) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const theirs = buf.subarray(off + CONFIG_HEADER, off + CONFIG_HEADER + slen);
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
        this.setConfigString(theirs);
        this.configReply(port, buf, off, ccmd);
        return;
      case ConfigCmd.forceSet:
        this.setConfigString(theirs);
        this.configReply(port, buf, off, ccmd);
        return;
      default:
        this.aoeError(port, buf, off, len, AoeError.badArgument);
    }
  }

  private setConfigString(value: Buffer): void {
    this.setState({ ...this.state, config: Buffer.from(value) });
    this.log.info({ export: this.name, config: value.toString("latin1") }, "config string set");
  }

  private configReply(port: ReplyPort, buf: Buffer, off: number, ccmd: number): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port, this, Off.arg);
    port.commit(this.writeConfigBody(tx, port, ccmd));
  }

  private writeConfigBody(tx: Buffer, port: ReplyPort, ccmd: number): number {
    // A string set through a port with a larger MTU is cut to what this port's frame holds.
    const cfg = this.state.config.subarray(0, replyRoom(tx, port) - CONFIG_HEADER);
    tx.writeUInt16BE(this.cfg.queueLength, ConfigOff.bufferCount);
    tx.writeUInt16BE(FIRMWARE_VERSION, ConfigOff.firmware);
    tx[ConfigOff.maxSectors] = this.maxSectorsFor(port.maxSectors);
    tx[ConfigOff.verCcmd] = (1 << 4) | ccmd;
    tx.writeUInt16BE(cfg.length, ConfigOff.stringLength);
    cfg.copy(tx, CONFIG_HEADER);
    return CONFIG_HEADER + cfg.length;
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
      writeMac(tx, Off.dst, dst);
      port.macBytes.copy(tx, Off.src);
      tx.writeUInt16BE(0x88a2, Off.etherType);
      tx[Off.verFlags] = (1 << 4) | Flag.response;
      tx[Off.error] = 0;
      tx.writeUInt16BE(this.shelf, Off.shelf);
      tx[Off.slot] = this.slot;
      tx[Off.command] = Command.queryConfig;
      tx.writeUInt32BE(0, Off.tag);
      port.commit(this.writeConfigBody(tx, port, ConfigCmd.read));
    }
  }

  // --- MAC mask list -----------------------------------------------------

  private macMask(port: ReplyPort, buf: Buffer, off: number, len: number): void {
    this.stats.masks++;
    if (len < MaskOff.directives) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const mcmd = buf[off + MaskOff.mcmd]!;
    const count = buf[off + MaskOff.count]!;
    if (mcmd === MaskCmd.read) {
      this.maskReply(port, buf, off, mcmd, 0, this.state.mask);
      return;
    }
    if (mcmd !== MaskCmd.edit || MaskOff.directives + count * MASK_DIRECTIVE_SIZE > len) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const capacity = Math.min(
      255,
      Math.floor((port.mtu + 14 - MaskOff.directives) / MASK_DIRECTIVE_SIZE),
    );
    const list = [...this.state.mask];
    for (let i = 0; i < count; i++) {
      const d = off + MaskOff.directives + i * MASK_DIRECTIVE_SIZE;
      const dcmd = buf[d + 1]!;
      const mac = readMac(buf, d + 2);
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
        this.setMask(list);
        this.maskErrorReply(port, buf, off, failure, i);
        return;
      }
    }
    this.setMask(list);
    this.maskReply(port, buf, off, mcmd, 0, list);
  }

  private setMask(list: number[]): void {
    this.setState({ ...this.state, mask: list });
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
    writeReplyHeader(tx, buf, off, port, this, Off.arg);
    // A list grown through a port with a larger MTU is answered with what this port's frame holds.
    const shown = list.slice(
      0,
      Math.floor((replyRoom(tx, port) - MaskOff.directives) / MASK_DIRECTIVE_SIZE),
    );
    tx[Off.arg] = 0;
    tx[MaskOff.mcmd] = mcmd;
    tx[MaskOff.merror] = merror;
    tx[MaskOff.count] = shown.length;
    let o = MaskOff.directives;
    for (const mac of shown) {
      tx[o] = 0;
      tx[o + 1] = MaskDcmd.none;
      writeMac(tx, o + 2, mac);
      o += MASK_DIRECTIVE_SIZE;
    }
    port.commit(o);
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
    const end = MaskOff.directives + index * MASK_DIRECTIVE_SIZE;
    writeReplyHeader(tx, buf, off, port, this, end);
    tx[Off.arg] = 0;
    tx[MaskOff.merror] = merror;
    tx[MaskOff.count] = index;
    for (let o = MaskOff.directives; o < end; o += MASK_DIRECTIVE_SIZE) tx[o] = 0;
    port.commit(end);
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
    if (len < ReserveOff.macs) {
      this.aoeError(port, buf, off, len, AoeError.badArgument);
      return;
    }
    const rcmd = buf[off + ReserveOff.rcmd]!;
    const count = buf[off + ReserveOff.count]!;
    if (rcmd === ReserveCmd.read) {
      this.reserveReply(port, buf, off, rcmd);
      return;
    }
    if (
      (rcmd !== ReserveCmd.set && rcmd !== ReserveCmd.forceSet) ||
      ReserveOff.macs + count * 6 > len
    ) {
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
      const mac = readMac(buf, off + ReserveOff.macs + i * 6);
      if (!macs.includes(mac)) macs.push(mac);
    }
    this.setState({ ...this.state, reserve: macs });
    this.log.info(
      { export: this.name, by: macToString(src), reserve: macs.map(macToString) },
      "reservation changed",
    );
    this.reserveReply(port, buf, off, rcmd);
  }

  private reserveReply(port: ReplyPort, buf: Buffer, off: number, rcmd: number): void {
    const tx = port.acquire();
    if (tx === null) return;
    writeReplyHeader(tx, buf, off, port, this, Off.arg);
    // A list set through a port with a larger MTU is answered with what this port's frame holds.
    const list = this.state.reserve.slice(
      0,
      Math.floor((replyRoom(tx, port) - ReserveOff.macs) / 6),
    );
    tx[ReserveOff.rcmd] = rcmd;
    tx[ReserveOff.count] = list.length;
    let o = ReserveOff.macs;
    for (const mac of list) {
      writeMac(tx, o, mac);
      o += 6;
    }
    port.commit(o);
  }

  // --- Errors and lifecycle -----------------------------------------------

  /** A reply with the AoE error flag: the request's header and argument echoed back. */
  private aoeError(port: ReplyPort, buf: Buffer, off: number, len: number, code: number): void {
    this.stats.aoeErrors++;
    const tx = port.acquire();
    if (tx === null) return;
    const echo = Math.min(len, argumentEnd(buf[off + Off.command]!));
    writeReplyHeader(tx, buf, off, port, this, echo);
    tx[Off.verFlags]! |= Flag.error;
    tx[Off.error] = code;
    port.commit(echo);
  }

  /** The admin's reset of what initiators set (aoectl clear). */
  clearState(what: "config" | "mask" | "reserve"): void {
    if (what === "config") this.setState({ ...this.state, config: Buffer.alloc(0) });
    else if (what === "mask") this.setState({ ...this.state, mask: [] });
    else this.setState({ ...this.state, reserve: [] });
    this.log.info({ export: this.name, cleared: what }, "state cleared by the admin");
  }

  resetStats(): void {
    for (const key of Object.keys(this.stats) as (keyof TargetStats)[]) {
      if (key !== "latency" && key !== "opLatency") this.stats[key] = 0;
    }
    this.stats.latency.reset();
    for (const h of Object.values(this.stats.opLatency)) h.reset();
  }

  /** Stops taking requests and resolves once every request in flight has been answered and an open error burst summarized. */
  drain(): Promise<void> {
    this.accepting = false;
    const answered =
      this.inflight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            this.drained = resolve;
          });
    // Nothing more will be served: a burst of errors is over, and its summary
    // must not wait for a timer that a stopping daemon would never see fire.
    return answered.then(() => {
      if (this.burst === null) return;
      clearTimeout(this.burst.timer);
      this.endBurst();
    });
  }
}

/** Bytes of fixed argument each command carries after the common header. */
function argumentEnd(command: number): number {
  switch (command) {
    case Command.ata:
      return ATA_HEADER;
    case Command.queryConfig:
      return CONFIG_HEADER;
    case Command.macMask:
      return MaskOff.directives;
    case Command.reserve:
      return ReserveOff.macs;
    default:
      return Off.arg;
  }
}

/** Reserved bytes 34-35 of the ATA argument. */
const ATA_RESERVED = AtaOff.lba + 6;

/** Bytes a reply may fill on this port: its transmit slot, within the port's MTU. */
function replyRoom(tx: Buffer, port: ReplyPort): number {
  return Math.min(tx.length, port.mtu + 14);
}

/**
 * Starts a reply in `tx` from a request at `req[off]`: copies `echo` bytes of
 * header and argument, addresses it back to the sender from this port, sets
 * the response flag and the export's own shelf/slot (never the wildcards).
 */
function writeReplyHeader(
  tx: Buffer,
  req: Buffer,
  off: number,
  port: ReplyPort,
  target: Target,
  echo: number,
): void {
  copySmall(req, off, tx, 0, echo);
  copySmall(req, off + Off.src, tx, Off.dst, 6);
  copySmall(port.macBytes, 0, tx, Off.src, 6);
  tx[Off.verFlags] = (1 << 4) | Flag.response;
  tx[Off.error] = 0;
  tx.writeUInt16BE(target.shelf, Off.shelf);
  tx[Off.slot] = target.slot;
}
