/**
 * The JSON Schema of /etc/aoed.yaml: the single source of truth for keys, types,
 * ranges and defaults. Validated with ajv (see load.ts).
 *
 * Two annotation keywords, ignored by validation, feed the error messages:
 *   x-expect    what a valid value looks like, in words ("a whole number from 0 to 254")
 *               (generated from type/enum/minimum/maximum when absent: see expectText)
 *   x-reserved  { value: why } for values inside the type's range that are not allowed
 * and `title` says where a mapping sits, for "this key belongs elsewhere" hints.
 */

import { SIZE_PATTERN } from "./units.js";

export type SchemaNode = { readonly [key: string]: unknown };

const bool = (def: boolean) => ({ type: "boolean", default: def }) as const;

const size = (expect: string) =>
  ({
    type: ["integer", "string"],
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    pattern: SIZE_PATTERN,
    "x-expect": expect,
  }) as const;

const PRINTABLE = "^[ -~]*$";

/** Linux interface names: 1..15 bytes, no '/', ':' or whitespace, not "." or "..". */
export const IFNAME_PATTERN = "^(?!\\.\\.?$)[^\\s/:]{1,15}$";
/** List names must not look like MACs: no ':' and a letter or '_' first. */
export const ACL_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9._-]{0,63}$";
const EXPORT_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$";

const aclEntries = {
  type: ["array", "null"],
  items: {
    type: "string",
    pattern: "^\\S+$",
    "x-expect": "a MAC address such as 00:1b:21:aa:bb:01, or the name of a list under `acls:`",
  },
  "x-expect": "a list of MAC addresses and `acls:` list names, e.g. [00:1b:21:aa:bb:01, xen-hosts]",
} as const;

/** Settings under `defaults:` that every export inherits unless it overrides them. */
export const inheritedProperties = {
  "queue-length": {
    type: "integer",
    minimum: 2,
    maximum: 16384,
    default: 64,
    description:
      "Requests the export works on at once: its request slots, advertised to initiators as the AoE buffer count. A request that arrives while every slot is busy is dropped (counted in `aoed_export_queue_drops_total`) and the initiator retransmits it. The slots are shared by every initiator of the export; the Linux initiator keeps up to 64 requests (its `aoe_maxout`) outstanding per host, so an export used by several hosts at once needs more.",
  },
  "write-cache": {
    ...bool(true),
    description:
      "`true`: a write is acknowledged once the backing store has taken it, into this machine's page cache; fast, but acknowledged writes are lost if this machine crashes or loses power, and the Linux initiator never sends FLUSH CACHE to make them durable (a guest's fsync ends at the acknowledgement). Right for battery-backed or UPS-protected storage; `aoed check`, `aoectl status` and the log (at start-up, and at a reload that adds such an export or turns this on) say so per export. `false`: every write is on stable storage before it is acknowledged, by group commit: one `fdatasync` covers every write completed since the previous one began (on a block device it reaches the device's cache flush), a lone write uses whichever of RWF_DSYNC or write + `fdatasync` measures faster, and no sync covers more than `queue-length` writes. Measured here (1 KiB random writes to uncached pages of an ext4 image on the VM's disk, 2-core VM, both targets at the same depth): 6.69x `vblade -s` at q32 in one run of the current code (1.18x the build before; 6.3-6.5x with earlier versions) and 1.01-1.07x at q1, now that a write covering part of a page, none of it cached, over written extents, goes through a second, O_DIRECT descriptor (ext4, io_uring, x86-64, Linux 6.5's cachestat, FIEMAP, 512-byte O_DIRECT; not with `workers:`; writes within 2 MiB of a hole of a sparse image or of `fallocate`d space stay buffered); 4.7-5.8x at q32 in four readings before, and 1.6-2.9x before that. With `direct-io: writes` every aligned write goes that way and reads stay in the page cache: 6.5-7.3x at q32 (eight runs), 0.98-1.15x at q1; `direct-io: true` writes as fast but its reads bypass the page cache (docs/operations.md). A failed sync fails the export's writes and flushes until it is reopened (`aoectl reload`). FLUSH CACHE syncs before its reply in both modes; IDENTIFY DEVICE reports a write cache exactly when this is `true`.",
  },
  "direct-io": {
    type: ["boolean", "string"],
    pattern: "^writes$",
    default: false,
    "x-expect": "true, false or writes",
    description:
      "`true`: `O_DIRECT`, bypassing the page cache, for every request aligned to what the store needs (512 or 4096 bytes, probed when the export is opened); unaligned requests go through a buffered descriptor. Where the store needs 4096 (a disk with 4 KiB logical sectors), writes go through the page cache all the same (the log says so in `writesBuffered` when the export opens, and `aoectl status` under its table): a write of a few sectors cannot go direct, and a buffered write beside a direct one to the same page would leave the page cache stale. For the same reason, while another writable export of the same file or block device has `direct-io: false`, this one's writes go through the page cache too (`aoed check` warns of such windows of one file; with `workers:` nothing keeps the two apart). A filesystem that refuses `O_DIRECT` makes the export fail to open. `writes`: the same for writes only, while reads go through the page cache and its readahead; the kernel drops the cached pages (or larger folios) a direct write touches, so later reads of them come from the store. For a durable export (`write-cache: false`) with small random writes whose reads should stay cached; nothing on a read-only export. `false`: buffered I/O through the page cache.",
  },
  io: {
    type: "string",
    enum: ["auto", "mmap", "io_uring", "threads", "sync"],
    default: "auto",
    description:
      "How the export's I/O is done. `auto`: a file on tmpfs or ramfs is mapped (`mmap`), anything else uses `io_uring` when the kernel allows it and libuv's thread pool (`threads`) when it does not; the start-up log says why (`ioNote`). `io_uring`: one ring shared by every export, submitted once per event-loop turn; the export fails to open when io_uring is unavailable. `threads`: libuv's thread pool, one thread hand-off per request. `mmap`: the file mapped, a read or write is one copy on the event loop. `sync`: `pread`/`pwrite` on the event loop. With `mmap` and `sync` a disk that stalls stalls the whole daemon: meant for files in memory and for measurements. Adjusted where the setting cannot apply, and said in the log: `mmap` with `direct-io: true` or `writes` is `auto`; `mmap` with `write-cache: false` on a file not in memory, or on an empty file, a file over 4 GiB or a block device, is `sync`; `mmap` and `sync` on a filesystem that can hang (fuse, nfs, cifs, 9p, ceph...) are `threads`. `aoed check` shows the setting and `aoectl status` the engine in effect.",
  },
  "trace-io": {
    ...bool(false),
    description:
      "Log every request at level info: initiator MAC, operation, LBA, sectors, result and backend latency. Very verbose: for debugging only.",
  },
  policy: {
    type: "string",
    enum: ["accept", "reject"],
    default: "accept",
    description:
      "The verdict for initiator MACs that are on neither `accept:` nor `deny:`. `accept`: every MAC not denied may use the export. `reject`: only the MACs on `accept:` (and not on `deny:`); the export is then announced by unicast to those MACs only. A refused MAC gets no answer at all, discovery included.",
  },
  broadcast: {
    ...bool(true),
    description:
      "Answer discovery queries that use the wildcard shelf (65535) or slot (255), as `aoe-discover` and the Linux driver's periodic discovery send. `false`: only queries for this export's own shelf and slot are answered; initiators still learn of the export from the announcement aoed sends when it starts serving it.",
  },
} as const;

export const exportSchema = {
  type: "object",
  title: "in an export (an item under `exports:`)",
  description:
    "One export: a file or block device served to initiators as AoE target `e<shelf>.<slot>` on the listed interfaces. Any setting of `defaults:` may be set here too, for this export only.",
  "x-expect": "a mapping with path (or uuid), shelf, slot and interfaces",
  additionalProperties: false,
  required: ["shelf", "slot", "interfaces"],
  oneOf: [{ required: ["path"] }, { required: ["uuid"] }],
  properties: {
    name: {
      type: "string",
      pattern: EXPORT_NAME_PATTERN,
      description:
        "Names the export in logs, metrics (the `export` label), aoectl and the state directory; unique. Default: `e<shelf>.<slot>`. Reloads match exports by name: renaming one removes it and adds a new one.",
      "x-expect":
        "a name of letters, digits, '.', '_', ':' or '-' starting with a letter or digit (at most 64 characters)",
    },
    path: {
      type: "string",
      pattern: "^/",
      description:
        "The regular file or block device to serve; `path:` or `uuid:` is required. Block devices are opened exclusively (`O_EXCL`): one that is mounted or held by another program (md, LVM, a running VM) cannot be exported. The user aoed runs as needs read and write access (read access with `read-only: true`).",
      "x-expect": "an absolute path to a file or block device, e.g. /dev/vg0/lv0",
    },
    uuid: {
      type: "string",
      pattern: "^[0-9A-Za-z-]{4,64}$",
      description:
        "Instead of `path:`: a filesystem UUID as listed by `blkid`; the export serves `/dev/disk/by-uuid/<uuid>`, wherever the kernel put that disk.",
      "x-expect": "a filesystem UUID as listed by blkid (an entry of /dev/disk/by-uuid)",
    },
    shelf: {
      type: "integer",
      minimum: 0,
      maximum: 65534,
      description:
        "The AoE major address. With `slot:` it makes the target name initiators see: shelf 0, slot 1 is `e0.1` (`/dev/etherd/e0.1` with the Linux driver).",
      not: { enum: [4095] },
      "x-expect": "a whole number from 0 to 65534, except 4095",
      "x-reserved": {
        "4095": "shelf 4095 (0x0FFF) is reserved: the Linux aoe initiator ignores it",
        "65535": "shelf 65535 (0xFFFF) is the broadcast shelf and cannot be exported",
      },
    },
    slot: {
      type: "integer",
      minimum: 0,
      maximum: 254,
      description:
        "The AoE minor address. Each shelf/slot pair must be unique on each interface, across everything on the network: two targets answering for the same address corrupt each other's data.",
      "x-reserved": { "255": "slot 255 (0xFF) is the broadcast slot and cannot be exported" },
    },
    interfaces: {
      type: "array",
      minItems: 1,
      description:
        "The network interfaces to serve the export on: names, or globs such as `eth*` matched against the interfaces that exist when the file is loaded (a glob never matches `lo`). A named interface that does not exist is an error; one that disappears while aoed runs is waited for, and bound again when it returns. With a bridge, bond or VLAN, name that device (`br0`, `bond0`, `eth1.100`), not the port under it.",
      items: {
        type: "string",
        pattern: "^[^\\s/]{1,64}$",
        "x-expect": "a network interface name or glob, e.g. eth0 or eth*",
      },
      "x-expect": "a list of network interface names or globs, e.g. [eth0] or [eth*]",
    },
    sectors: {
      type: "integer",
      minimum: 1,
      maximum: 255,
      description:
        "A cap on the sectors per ATA request advertised to initiators. Default: what the interface's MTU allows, (MTU - 36) / 512: 2 at MTU 1500, 17 at 9000.",
    },
    ...inheritedProperties,
    "read-only": {
      ...bool(false),
      description:
        "Open the backing store read-only and answer every write with an ATA error (aborted).",
    },
    offset: {
      ...size("a size in bytes, a multiple of 512, e.g. 0, 1MiB or 4096"),
      default: 0,
      description:
        "Where the exported window starts in the backing store, in bytes. With `length:` one file or device can hold several exports.",
    },
    length: {
      ...size("a size in bytes, a multiple of 512, e.g. 10GiB or 1048576"),
      type: ["integer", "string", "null"],
      description:
        "The size of the exported window, in bytes. Default (or null): from `offset:` to the end of the file or device. An image file that grows is picked up at the next reload.",
    },
    serial: {
      type: "string",
      maxLength: 20,
      pattern: PRINTABLE,
      description:
        "The serial number in the IDENTIFY DEVICE answer. Default: the export name, cut to 20 characters. Initiators (udev's /dev/disk/by-id names, multipath) take two disks with the same serial for one: keep serials unique.",
      "x-expect": "at most 20 printable ASCII characters",
    },
    model: {
      type: "string",
      maxLength: 40,
      pattern: PRINTABLE,
      default: "aoed",
      description: "The model name in the IDENTIFY DEVICE answer.",
      "x-expect": "at most 40 printable ASCII characters",
    },
    accept: {
      ...aclEntries,
      description:
        "MAC addresses, and names of lists under `acls:`, allowed to use the export. It matters with `policy: reject`; with policy accept every MAC not denied is allowed anyway, and aoed warns that the list has no effect.",
    },
    deny: {
      ...aclEntries,
      description:
        "MAC addresses, and names of lists under `acls:`, always refused, whatever the policy: deny wins over accept.",
    },
  },
} as const;

export const interfaceSchema = {
  type: ["object", "null"],
  title: "in an interface block (under `interfaces: <name>:`)",
  description:
    "Settings for one network interface, named by its key; an empty value (`eth1:` alone) keeps the defaults.",
  additionalProperties: false,
  properties: {
    mtu: {
      type: ["integer", "string"],
      minimum: 576,
      maximum: 65535,
      pattern: "^auto$",
      default: "auto",
      "x-expect": "auto or a number from 576 to 65535",
      description:
        "The MTU aoed uses on the interface, which decides how many sectors fit in one request, (MTU - 36) / 512. `auto`: the interface's own MTU, followed when it changes. A number larger than the interface's MTU is capped to it; a smaller one helps when a switch on the path does not pass the interface's frame size (e.g. 1500 on a 9000-byte NIC behind a switch without jumbo frames).",
    },
    buffers: {
      type: "integer",
      minimum: 1,
      maximum: 16384,
      "x-expect": "a number of 64 KiB receive buffers from 1 to 16384",
      description:
        "The size of each of the interface's two packet rings (receive and transmit), in 64 KiB units: 64 is 4 MiB each. Default: room for every request slot of the exports on the interface twice over, at least 4 MiB and at most 16 MiB per ring. Raise it if `aoed_interface_receive_drops_total` grows.",
    },
    "busy-poll": {
      type: "integer",
      minimum: 0,
      maximum: 1000,
      default: 50,
      "x-expect": "microseconds from 0 to 1000",
      description:
        "Busy polling, in microseconds: once every request aoed's thread has taken (on any interface) has been answered, it watches this interface's receive ring this long for the next request before going back to sleep, so an initiator that sends its next request right away (queue depth 1: a booting guest, sync writes, `dd`) does not wait for aoed to wake up. It watches only after a request that came within that time of the previous replies, and the first watch that sees nothing ends it: an idle link costs one watch, one whose requests come further apart costs nothing, and a fast initiator at queue depth 1 keeps a CPU busy for as long as its requests keep coming. Before a watch that follows replies the I/O engine completed asynchronously (io_uring or threads: a file on a disk, a block device; not a file mapped from tmpfs), it gives up its CPU once (sched_yield), so an initiator on the same machine that the reply woke on that CPU may run first. While it watches, other interfaces wait (at most this long per watch, 2 ms in all before it lets them in). 0: off. Measured against vblade on a veth pair, tmpfs, 1 KiB requests at queue depth 1, ratios of req/s in the two client modes: random reads 0.75x / 0.76x with 0, 1.10x / 1.08x with 50; sequential writes 0.86x / 0.89x and 1.39x / 1.40x; details and CPU cost in docs/performance.md.",
    },
  },
} as const;

/** Where the Prometheus endpoint listens: `HOST:PORT`, `[V6]:PORT`, `:PORT` (every address) or off. */
const LISTEN_PATTERN = "^(off|(\\[[0-9A-Fa-f:.]+\\]|\\*|[A-Za-z0-9.-]*):[0-9]{1,5})$";

/** `metrics:` (the Prometheus endpoint); false or off disables it. */
export const metricsSchema = {
  type: ["object", "boolean", "string", "null"],
  title: "under `metrics:`",
  description:
    "The Prometheus endpoint, `http://<listen>/metrics`, with metrics per export, per interface and for the process (docs/metrics.md). `false` or `off` turns it off; without this key it listens on 127.0.0.1:9288. Read at start only: a change takes effect when aoed restarts.",
  pattern: "^off$",
  "x-expect": "a mapping such as `{ listen: 127.0.0.1:9288 }`, or false to turn metrics off",
  additionalProperties: false,
  properties: {
    listen: {
      type: ["string", "boolean"],
      pattern: LISTEN_PATTERN,
      default: "127.0.0.1:9288",
      description:
        "Where to serve `/metrics`: `HOST:PORT`, `[IPV6]:PORT`, or `:PORT` (also `*:PORT`) for every address; `off` (or `false`) turns the endpoint off. There is no authentication: listen on a management network or on loopback.",
      "x-expect":
        "HOST:PORT to serve /metrics on, e.g. 127.0.0.1:9288, [::1]:9288 or :9288 (every address), or off",
    },
  },
} as const;

export const DEFAULT_CONTROL_SOCKET = "/run/aoed/aoed.sock";

export const configSchema = {
  $id: "https://github.com/aoed/aoed/config.schema.json",
  type: "object",
  title: "at the top level",
  description:
    "The configuration of aoed, `/etc/aoed.yaml` unless `--config` names another file. Only `exports:` is required.",
  "x-expect": "a mapping of settings such as `exports:`",
  additionalProperties: false,
  required: ["exports"],
  properties: {
    "log-level": {
      type: "string",
      enum: ["trace", "debug", "info", "warn", "error"],
      default: "info",
      description:
        "The least severe log messages written (JSON lines on standard output). The `--log-level` option overrides it. A reload applies a new value.",
    },
    "state-dir": {
      type: ["string", "null"],
      pattern: "^/",
      default: null,
      "x-expect": "an absolute directory path, e.g. /var/lib/aoed",
      description:
        "Where the state initiators set on exports (config strings, MAC mask lists, reservations) is kept, one file per export name, so it survives restarts. Without it that state lives only as long as the process. The packaged configuration uses `/var/lib/aoed`.",
    },
    workers: {
      type: ["integer", "string"],
      minimum: 0,
      maximum: 64,
      pattern: "^auto$",
      default: 0,
      "x-expect": "a number of worker threads from 0 to 64, or auto",
      description:
        "Threads that serve ATA reads and writes besides the main thread, for machines where one core is not enough. Each interface's frames are shared out by the kernel (PACKET_FANOUT): reads and writes by their tag to the workers, everything else (discovery, config strings, MAC masks, reservations, FLUSH) to the main thread. `auto`: one per CPU, at most 64. 0: the main thread serves everything, which is best when the machine also runs the initiators. Each worker may hold up to `queue-length` requests per export. Read at start only.",
    },
    "watch-config": {
      type: "boolean",
      default: false,
      description:
        "Reload the configuration whenever this file is saved, as `aoectl reload` does. Off by default: an edit saved half-way that is still valid (an export deleted while moving it, a path not yet corrected) would go live at once and detach a disk from the hosts using it; with it off, changes apply when you run `aoectl reload` or `systemctl reload aoed`, which say what changed or why the file was rejected. Read at start only.",
    },
    metrics: metricsSchema,
    "control-socket": {
      type: ["string", "boolean"],
      pattern: "^(/.*|off)$",
      default: DEFAULT_CONTROL_SOCKET,
      "x-expect": "an absolute path for aoectl's control socket, e.g. /run/aoed/aoed.sock, or off",
      description:
        "The unix socket through which aoectl's admin commands (status, stats, monitor, reload, show, clear) reach the daemon, created with mode 0660; `off` (or `false`): no socket. Without this key: `$AOED_SOCKET` if set, else `/run/aoed/aoed.sock`. Read at start only.",
    },
    "control-group": {
      type: ["string", "integer"],
      pattern: "^[A-Za-z_][A-Za-z0-9._-]{0,31}\\$?$",
      minimum: 0,
      maximum: 4294967294,
      "x-expect": "a group name or number whose members may use the control socket, e.g. aoe",
      description:
        "The group given the control socket: its members may use aoectl's admin commands. Without it only root and aoed's own user can. aoed must belong to the group (the packaged unit runs it as user `aoed`, group `aoed`). Read at start only.",
    },
    defaults: {
      type: ["object", "null"],
      title: "under `defaults:`",
      description:
        "Settings every export inherits unless it sets its own. A setting given nowhere takes the default shown here.",
      additionalProperties: false,
      properties: inheritedProperties,
    },
    interfaces: {
      type: ["object", "null"],
      "x-expect": "a mapping of interface names to settings, e.g. `eth0: { mtu: 9000 }`",
      description:
        "Settings per network interface, by name. Interfaces not listed use their own MTU and ring sizes computed from the exports on them. Which interfaces an export is served on is set in the export.",
      propertyNames: { pattern: IFNAME_PATTERN, "x-expect": "a network interface name" },
      additionalProperties: interfaceSchema,
    },
    acls: {
      type: ["object", "null"],
      "x-expect": "a mapping of list names to lists of MACs, e.g. `xen-hosts: [00:1b:21:aa:bb:01]`",
      description:
        "Named lists of initiator MAC addresses, for the `accept:` and `deny:` of exports. MACs are written `00:1b:21:aa:bb:01` or `00-1B-21-AA-BB-01`; a list may include other lists by name. A list no export uses is reported.",
      propertyNames: {
        pattern: ACL_NAME_PATTERN,
        "x-expect": "a list name: a letter or '_' followed by letters, digits, '.', '_' or '-'",
      },
      additionalProperties: {
        ...aclEntries,
        description:
          "One list: MAC addresses and names of other lists, expanded recursively (a cycle is an error).",
      },
    },
    exports: {
      type: "array",
      minItems: 1,
      description: "What to serve: at least one export.",
      items: exportSchema,
      "x-expect": "a list of exports (each item starts with `- `)",
    },
  },
} as const;

/** A value as ajv's verbose errors hand it back; only the keys we read. */
function prop(node: SchemaNode, key: string): unknown {
  return Object.hasOwn(node, key) ? node[key] : undefined;
}

/** Describe in words what a schema node accepts. */
export function expectText(node: SchemaNode): string {
  const explicit = prop(node, "x-expect");
  if (typeof explicit === "string") return explicit;
  const en = prop(node, "enum");
  if (Array.isArray(en)) return `one of ${en.map(String).join(", ")}`;
  const type = prop(node, "type");
  if (type === "boolean") return "true or false";
  if (type === "integer") {
    const min = prop(node, "minimum");
    const max = prop(node, "maximum");
    if (typeof min === "number" && typeof max === "number") {
      return `a whole number from ${min} to ${max}`;
    }
    return "a whole number";
  }
  if (type === "string") return "text";
  if (type === "array") return "a list";
  if (type === "object") return "a mapping";
  return "a valid value";
}

/** Default of a setting under `defaults:` (or of an export key that has one). */
export function schemaDefault<K extends keyof typeof exportSchema.properties>(key: K): unknown {
  return prop(exportSchema.properties[key] as SchemaNode, "default");
}

/** For an unknown key: the places where that key would be valid ("under `defaults:`", ...). */
export function placesForKey(key: string): string[] {
  const places: string[] = [];
  const mappings: SchemaNode[] = [
    configSchema,
    configSchema.properties.defaults,
    metricsSchema,
    interfaceSchema,
    exportSchema,
  ];
  for (const m of mappings) {
    const props = prop(m, "properties") as SchemaNode;
    if (Object.hasOwn(props, key)) places.push(String(prop(m, "title")));
  }
  return places;
}

/** All keys valid anywhere in the file, for did-you-mean across sections. */
export function allKeys(): string[] {
  return [
    ...new Set([
      ...Object.keys(configSchema.properties),
      ...Object.keys(inheritedProperties),
      ...Object.keys(metricsSchema.properties),
      ...Object.keys(interfaceSchema.properties),
      ...Object.keys(exportSchema.properties),
    ]),
  ];
}
