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
export const EXPORT_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$";

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
  "queue-length": { type: "integer", minimum: 2, maximum: 16384, default: 64 },
  "write-cache": bool(true),
  "direct-io": bool(false),
  "trace-io": bool(false),
  policy: { type: "string", enum: ["accept", "reject"], default: "accept" },
  broadcast: bool(true),
} as const;

export const exportSchema = {
  type: "object",
  title: "in an export (an item under `exports:`)",
  "x-expect": "a mapping with path (or uuid), shelf, slot and interfaces",
  additionalProperties: false,
  required: ["shelf", "slot", "interfaces"],
  oneOf: [{ required: ["path"] }, { required: ["uuid"] }],
  properties: {
    name: {
      type: "string",
      pattern: EXPORT_NAME_PATTERN,
      "x-expect":
        "a name of letters, digits, '.', '_', ':' or '-' starting with a letter or digit (at most 64 characters)",
    },
    path: {
      type: "string",
      pattern: "^/",
      "x-expect": "an absolute path to a file or block device, e.g. /dev/vg0/lv0",
    },
    uuid: {
      type: "string",
      pattern: "^[0-9A-Za-z-]{4,64}$",
      "x-expect": "a filesystem UUID as listed by blkid (an entry of /dev/disk/by-uuid)",
    },
    shelf: {
      type: "integer",
      minimum: 0,
      maximum: 65534,
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
      "x-reserved": { "255": "slot 255 (0xFF) is the broadcast slot and cannot be exported" },
    },
    interfaces: {
      type: "array",
      minItems: 1,
      items: {
        type: "string",
        pattern: "^[^\\s/]{1,64}$",
        "x-expect": "a network interface name or glob, e.g. eth0 or eth*",
      },
      "x-expect": "a list of network interface names or globs, e.g. [eth0] or [eth*]",
    },
    sectors: { type: "integer", minimum: 1, maximum: 255 },
    ...inheritedProperties,
    "read-only": bool(false),
    offset: { ...size("a size in bytes, a multiple of 512, e.g. 0, 1MiB or 4096"), default: 0 },
    length: {
      ...size("a size in bytes, a multiple of 512, e.g. 10GiB or 1048576"),
      type: ["integer", "string", "null"],
    },
    serial: {
      type: "string",
      maxLength: 20,
      pattern: PRINTABLE,
      "x-expect": "at most 20 printable ASCII characters",
    },
    model: {
      type: "string",
      maxLength: 40,
      pattern: PRINTABLE,
      default: "aoed",
      "x-expect": "at most 40 printable ASCII characters",
    },
    accept: aclEntries,
    deny: aclEntries,
  },
} as const;

export const interfaceSchema = {
  type: ["object", "null"],
  title: "in an interface block (under `interfaces: <name>:`)",
  additionalProperties: false,
  properties: {
    mtu: {
      type: ["integer", "string"],
      minimum: 576,
      maximum: 65535,
      pattern: "^auto$",
      default: "auto",
      "x-expect": "auto or a number from 576 to 65535",
    },
    buffers: {
      type: "integer",
      minimum: 1,
      maximum: 16384,
      "x-expect": "a number of 64 KiB receive buffers from 1 to 16384",
    },
  },
} as const;

/** Where the Prometheus endpoint listens: `HOST:PORT`, `[V6]:PORT`, `:PORT` (every address) or off. */
export const LISTEN_PATTERN = "^(off|(\\[[0-9A-Fa-f:.]+\\]|\\*|[A-Za-z0-9.-]*):[0-9]{1,5})$";

/** `metrics:` (the Prometheus endpoint); false or off disables it. */
export const metricsSchema = {
  type: ["object", "boolean", "string", "null"],
  title: "under `metrics:`",
  pattern: "^off$",
  "x-expect": "a mapping such as `{ listen: 127.0.0.1:9288 }`, or false to turn metrics off",
  additionalProperties: false,
  properties: {
    listen: {
      type: ["string", "boolean"],
      pattern: LISTEN_PATTERN,
      default: "127.0.0.1:9288",
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
  "x-expect": "a mapping of settings such as `exports:`",
  additionalProperties: false,
  required: ["exports"],
  properties: {
    "log-level": {
      type: "string",
      enum: ["trace", "debug", "info", "warn", "error"],
      default: "info",
    },
    "state-dir": {
      type: ["string", "null"],
      pattern: "^/",
      default: null,
      "x-expect": "an absolute directory path, e.g. /var/lib/aoed",
    },
    metrics: metricsSchema,
    "control-socket": {
      type: ["string", "boolean"],
      pattern: "^(/.*|off)$",
      default: DEFAULT_CONTROL_SOCKET,
      "x-expect": "an absolute path for aoectl's control socket, e.g. /run/aoed/aoed.sock, or off",
    },
    "control-group": {
      type: ["string", "integer"],
      pattern: "^[A-Za-z_][A-Za-z0-9._-]{0,31}\\$?$",
      minimum: 0,
      maximum: 4294967294,
      "x-expect": "a group name or number whose members may use the control socket, e.g. aoe",
    },
    defaults: {
      type: ["object", "null"],
      title: "under `defaults:`",
      additionalProperties: false,
      properties: inheritedProperties,
    },
    interfaces: {
      type: ["object", "null"],
      "x-expect": "a mapping of interface names to settings, e.g. `eth0: { mtu: 9000 }`",
      propertyNames: { pattern: IFNAME_PATTERN, "x-expect": "a network interface name" },
      additionalProperties: interfaceSchema,
    },
    acls: {
      type: ["object", "null"],
      "x-expect": "a mapping of list names to lists of MACs, e.g. `xen-hosts: [00:1b:21:aa:bb:01]`",
      propertyNames: {
        pattern: ACL_NAME_PATTERN,
        "x-expect": "a list name: a letter or '_' followed by letters, digits, '.', '_' or '-'",
      },
      additionalProperties: aclEntries,
    },
    exports: {
      type: "array",
      minItems: 1,
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
