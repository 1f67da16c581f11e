/**
 * A userspace AoE initiator on the same packet layer as the daemon: discovery,
 * IDENTIFY, reads, writes and the management commands. Used by aoectl, the
 * integration tests and quick checks. Correctness over speed: each call
 * builds typed messages with the protocol codec.
 */
import { PacketSocket } from "../net/packet-socket.js";
import {
  AOE_ERROR_TEXT,
  AOE_HEADER,
  ATA_STATUS_ERR,
  AtaCmd,
  AtaFlag,
  BROADCAST_MAC,
  BROADCAST_SHELF,
  BROADCAST_SLOT,
  Command,
  ConfigCmd,
  SECTOR,
} from "../protocol/constants.js";
import { isResponse } from "../protocol/frame-readers.js";
import { type IdentifyPage, parseIdentify } from "../protocol/identify.js";
import { macToString, readMac } from "../protocol/mac.js";
import {
  type AtaArg,
  type ConfigArg,
  type Message,
  parse,
  serialize,
} from "../protocol/messages.js";

export interface TargetInfo {
  shelf: number;
  slot: number;
  mac: string;
  macBytes: Buffer;
  bufferCount: number;
  firmware: number;
  maxSectors: number;
  config: string;
}

export interface IdentifyResult extends IdentifyPage {
  page: Buffer;
}

/** The target answered with the AoE error flag. */
export class AoeErrorReply extends Error {
  constructor(readonly code: number) {
    super(`AoE error ${code}: ${AOE_ERROR_TEXT[code] ?? "unknown"}`);
  }
}

/** The ATA command failed (status ERR). */
export class AtaErrorReply extends Error {
  constructor(
    readonly status: number,
    readonly error: number,
  ) {
    super(`ATA error: status 0x${status.toString(16)}, error 0x${error.toString(16)}`);
  }
}

export class TimeoutError extends Error {}

interface Pending {
  resolve(m: Message): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** A config query as an initiator sends it: the target fills in the counts. */
function configQuery(ccmd: number, value: string): ConfigArg {
  return {
    bufferCount: 0,
    firmware: 0,
    maxSectors: 0,
    aoeVersion: 1,
    ccmd,
    config: Buffer.from(value, "latin1"),
  };
}

export interface ClientOptions {
  /** Per-try timeout (ms) and tries before a request fails. */
  timeoutMs?: number;
  tries?: number;
}

export class AoeClient {
  private readonly pending = new Map<number, Pending>();
  private readonly collectors = new Map<number, (m: Message) => void>();
  private unsolicited: ((m: Message) => void) | null = null;
  private nextTag = (Math.random() * 0x7fffffff) >>> 0;
  private readonly timeoutMs: number;
  private readonly tries: number;

  private constructor(
    private readonly sock: PacketSocket,
    opts: ClientOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 500;
    this.tries = opts.tries ?? 4;
    sock.start(this.onFrame);
  }

  static open(ifname: string, opts: ClientOptions = {}): AoeClient {
    return new AoeClient(
      PacketSocket.open(ifname, { rxRingBytes: 4 << 20, txRingBytes: 4 << 20 }),
      opts,
    );
  }

  get mac(): Buffer {
    return this.sock.mac;
  }

  get mtu(): number {
    return this.sock.mtu;
  }

  /** Receives replies nobody asked for, such as a target's announcement at start. */
  onUnsolicited(listener: (m: Message) => void): void {
    this.unsolicited = listener;
  }

  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error("client closed"));
    }
    this.pending.clear();
    this.sock.close();
  }

  private readonly onFrame = (buf: Buffer, off: number, len: number): void => {
    if (len < AOE_HEADER || !isResponse(buf, off)) return;
    let msg: Message;
    try {
      msg = parse(Buffer.from(buf.subarray(off, off + len)));
    } catch {
      return;
    }
    const collect = this.collectors.get(msg.tag);
    if (collect) {
      collect(msg);
      return;
    }
    const p = this.pending.get(msg.tag);
    if (!p) {
      this.unsolicited?.(msg);
      return;
    }
    this.pending.delete(msg.tag);
    clearTimeout(p.timer);
    if (msg.isError) p.reject(new AoeErrorReply(msg.error));
    else p.resolve(msg);
  };

  private tag(): number {
    this.nextTag = (this.nextTag + 1) & 0x7fffffff;
    return this.nextTag;
  }

  private header(dst: Buffer, shelf: number, slot: number, command: number, tag: number) {
    return {
      dst,
      src: this.sock.mac,
      response: false,
      isError: false,
      error: 0,
      shelf,
      slot,
      command,
      tag,
    };
  }

  /** Sends one request and resolves with its reply, retransmitting (with a new tag) on timeout. */
  send(build: (tag: number) => Message): Promise<Message> {
    return new Promise((resolve, reject) => {
      const attempt = (tries: number) => {
        const tag = this.tag();
        const frame = serialize(build(tag));
        const timer = setTimeout(() => {
          this.pending.delete(tag);
          if (tries + 1 >= this.tries)
            reject(new TimeoutError(`no reply after ${this.tries} tries`));
          else attempt(tries + 1);
        }, this.timeoutMs);
        this.pending.set(tag, { resolve, reject, timer });
        this.transmit(frame);
      };
      attempt(0);
    });
  }

  private transmit(frame: Buffer): void {
    if (!this.sock.send(frame)) throw new Error(`${this.sock.ifname}: transmit ring full`);
    this.sock.flush();
  }

  /** Broadcast (or addressed) query config; collects every reply until the timeout. */
  discover(
    opts: { shelf?: number; slot?: number; timeoutMs?: number; dst?: Buffer } = {},
  ): Promise<TargetInfo[]> {
    const tag = this.tag();
    const found = new Map<string, TargetInfo>();
    this.collectors.set(tag, (m) => {
      if (m.kind !== "config" || m.isError) return;
      found.set(`${m.shelf}.${m.slot}/${macToString(readMac(m.src, 0))}`, {
        shelf: m.shelf,
        slot: m.slot,
        mac: macToString(readMac(m.src, 0)),
        macBytes: m.src,
        bufferCount: m.arg.bufferCount,
        firmware: m.arg.firmware,
        maxSectors: m.arg.maxSectors,
        config: m.arg.config.toString("latin1"),
      });
    });
    this.transmit(
      serialize({
        ...this.header(
          opts.dst ?? BROADCAST_MAC,
          opts.shelf ?? BROADCAST_SHELF,
          opts.slot ?? BROADCAST_SLOT,
          Command.queryConfig,
          tag,
        ),
        kind: "config",
        arg: configQuery(ConfigCmd.read, ""),
      }),
    );
    return new Promise((resolve) =>
      setTimeout(() => {
        this.collectors.delete(tag);
        resolve(
          [...found.values()].sort(
            (a, b) => a.shelf - b.shelf || a.slot - b.slot || a.mac.localeCompare(b.mac),
          ),
        );
      }, opts.timeoutMs ?? 1000),
    );
  }

  /** Sends an ATA command; rejects with AtaErrorReply when the status says ERR. */
  async ata(
    t: TargetInfo,
    arg: Omit<AtaArg, "errFeature"> & { errFeature?: number },
  ): Promise<AtaArg> {
    const reply = await this.send((tag) => ({
      ...this.header(t.macBytes, t.shelf, t.slot, Command.ata, tag),
      kind: "ata",
      arg: { errFeature: 0, ...arg },
    }));
    if (reply.kind !== "ata") throw new Error(`unexpected reply to ATA: ${reply.kind}`);
    if (reply.arg.cmdStatus & ATA_STATUS_ERR)
      throw new AtaErrorReply(reply.arg.cmdStatus, reply.arg.errFeature);
    return reply.arg;
  }

  async identify(t: TargetInfo): Promise<IdentifyResult> {
    const r = await this.ata(t, {
      aflags: 0,
      sectorCount: 1,
      cmdStatus: AtaCmd.identifyDevice,
      lba: 0,
      data: Buffer.alloc(0),
    });
    const page = Buffer.from(r.data.subarray(0, 512));
    return { ...parseIdentify(page), page };
  }

  /** Reads `count` sectors at `lba`, split into requests of the target's max sectors, queued up to its buffer count. */
  async read(t: TargetInfo, lba: number, count: number): Promise<Buffer> {
    const out = Buffer.alloc(count * SECTOR);
    await this.chunked(t, lba, count, async (at, n) => {
      const r = await this.ata(t, {
        aflags: AtaFlag.lba48,
        sectorCount: n,
        cmdStatus: AtaCmd.readSectorsExt,
        lba: at,
        data: Buffer.alloc(0),
      });
      if (r.data.length < n * SECTOR)
        throw new Error(`short read reply: ${r.data.length} bytes for ${n} sectors`);
      r.data.copy(out, (at - lba) * SECTOR, 0, n * SECTOR);
    });
    return out;
  }

  async write(t: TargetInfo, lba: number, data: Buffer): Promise<void> {
    if (data.length % SECTOR !== 0) throw new Error("write length must be a multiple of 512");
    await this.chunked(t, lba, data.length / SECTOR, async (at, n) => {
      const slice = data.subarray((at - lba) * SECTOR, (at - lba + n) * SECTOR);
      await this.ata(t, {
        aflags: AtaFlag.lba48 | AtaFlag.write,
        sectorCount: n,
        cmdStatus: AtaCmd.writeSectorsExt,
        lba: at,
        data: slice,
      });
    });
  }

  async flush(t: TargetInfo): Promise<void> {
    await this.ata(t, {
      aflags: 0,
      sectorCount: 0,
      cmdStatus: AtaCmd.flushCacheExt,
      lba: 0,
      data: Buffer.alloc(0),
    });
  }

  private async chunked(
    t: TargetInfo,
    lba: number,
    count: number,
    op: (lba: number, n: number) => Promise<void>,
  ): Promise<void> {
    const step = Math.max(1, t.maxSectors);
    const chunks: [number, number][] = [];
    for (let at = lba; at < lba + count; at += step)
      chunks.push([at, Math.min(step, lba + count - at)]);
    const workers = Array.from(
      { length: Math.max(1, Math.min(t.bufferCount, 16, chunks.length)) },
      async () => {
        for (let c = chunks.shift(); c; c = chunks.shift()) await op(c[0], c[1]);
      },
    );
    await Promise.all(workers);
  }

  async config(t: TargetInfo, ccmd: number, value = ""): Promise<Message> {
    return this.send((tag) => ({
      ...this.header(t.macBytes, t.shelf, t.slot, Command.queryConfig, tag),
      kind: "config",
      arg: configQuery(ccmd, value),
    }));
  }

  async macMask(
    t: TargetInfo,
    mcmd: number,
    directives: { dcmd: number; mac: Buffer }[] = [],
  ): Promise<Message> {
    return this.send((tag) => ({
      ...this.header(t.macBytes, t.shelf, t.slot, Command.macMask, tag),
      kind: "macmask",
      arg: { mcmd, merror: 0, directives },
    }));
  }

  async reserve(t: TargetInfo, rcmd: number, macs: Buffer[] = []): Promise<Message> {
    return this.send((tag) => ({
      ...this.header(t.macBytes, t.shelf, t.slot, Command.reserve, tag),
      kind: "reserve",
      arg: { rcmd, macs },
    }));
  }
}
