/** Map key paths to source offsets (and back) in a parsed YAML document. */

import { type Document, isAlias, isMap, isScalar, isSeq, type Node, type Pair } from "yaml";
import type { PathSegment } from "./diagnostics.js";

type Range = [number, number, number];

function rangeOf(node: unknown): Range | undefined {
  if (node && typeof node === "object" && "range" in node) {
    const r = (node as { range?: Range | null }).range;
    return r ?? undefined;
  }
  return undefined;
}

function deref(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function keyString(pair: Pair): string {
  const k = pair.key;
  if (isScalar(k)) return String(k.value);
  return String(k);
}

function isEmpty(node: unknown): boolean {
  if (node === null || node === undefined) return true;
  const r = rangeOf(node);
  return isScalar(node) && node.value === null && (r === undefined || r[0] === r[1]);
}

/**
 * Source offset for a key path: the value node, or its key when `want` is "key"
 * or the value is empty. If the path does not exist entirely, the deepest existing
 * ancestor's position.
 */
export function locate(
  doc: Document,
  path: readonly PathSegment[],
  want: "value" | "key" = "value",
): number {
  let node: unknown = doc.contents;
  let pos = rangeOf(node)?.[0] ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    node = deref(doc, node);
    let key: Node | null = null;
    if (isMap(node)) {
      const s = String(seg);
      const pair = [...node.items].reverse().find((p) => keyString(p) === s);
      if (!pair) return pos;
      key = pair.key as Node | null;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      if (seg >= node.items.length) return pos;
      node = node.items[seg];
    } else {
      return pos;
    }
    const last = i === path.length - 1;
    const keyPos = key ? rangeOf(key)?.[0] : undefined;
    const valuePos = rangeOf(node)?.[0];
    if (keyPos !== undefined && ((last && want === "key") || isEmpty(node))) pos = keyPos;
    else if (valuePos !== undefined) pos = valuePos;
    else if (keyPos !== undefined) pos = keyPos;
  }
  return pos;
}

/** The key path of the deepest node containing `offset` (for YAML syntax errors). */
export function pathAt(doc: Document, offset: number): PathSegment[] {
  const seen = new Set<unknown>();
  const within = (n: unknown): boolean => {
    const r = rangeOf(n);
    return r !== undefined && r[0] <= offset && offset < Math.max(r[1], r[2]);
  };
  const walk = (node: unknown, path: PathSegment[]): PathSegment[] => {
    if (seen.has(node)) return path;
    seen.add(node);
    if (isMap(node)) {
      for (const pair of node.items) {
        const k = keyString(pair);
        if (within(pair.key)) return [...path, k];
        if (within(pair.value)) return walk(pair.value, [...path, k]);
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) {
        if (within(node.items[i])) return walk(node.items[i], [...path, i]);
      }
    }
    return path;
  };
  return walk(doc.contents, []);
}

/** The YAML node at a key path (aliases resolved), or undefined. */
function nodeAt(doc: Document, path: readonly PathSegment[]): unknown {
  let node: unknown = doc.contents;
  for (const seg of path) {
    node = deref(doc, node);
    if (isMap(node)) {
      const s = String(seg);
      node = [...node.items].reverse().find((p) => keyString(p) === s)?.value;
    } else if (isSeq(node) && typeof seg === "number") {
      node = node.items[seg];
    } else {
      return undefined;
    }
  }
  return deref(doc, node);
}

/** Offset of the first occurrence of the key at the end of `path` in its mapping. */
export function firstKeyOffset(doc: Document, path: readonly PathSegment[]): number | undefined {
  const parent = nodeAt(doc, path.slice(0, -1));
  if (!isMap(parent)) return undefined;
  const s = String(path[path.length - 1]);
  const pair = parent.items.find((p) => keyString(p) === s);
  return pair ? rangeOf(pair.key)?.[0] : undefined;
}

/** The source text of the node at a key path (e.g. "0012" for a number the user typed). */
export function sourceAt(
  doc: Document,
  text: string,
  path: readonly PathSegment[],
): string | undefined {
  const r = rangeOf(nodeAt(doc, path));
  return r ? text.slice(r[0], r[1]) : undefined;
}
