/**
 * docs/configuration.md is generated from the JSON Schema by
 * scripts/gen-config-doc.ts. These tests regenerate it in memory and fail when
 * the committed file has drifted, or when a key has no description to show.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { anchor, defaultOutput, renderConfigReference } from "../../scripts/gen-config-doc.js";
import { configSchema, type SchemaNode } from "../../src/config/schema.js";

/** Every key of the schema as a path (`exports[].shelf`), with its node. */
function schemaKeys(node: SchemaNode, prefix = ""): [string, SchemaNode][] {
  const out: [string, SchemaNode][] = [];
  const props = (node.properties ?? {}) as Record<string, SchemaNode>;
  for (const [key, child] of Object.entries(props)) {
    const path = `${prefix}${key}`;
    out.push([path, child], ...schemaKeys(child, `${path}.`));
    const items = child.items as SchemaNode | undefined;
    if (items?.properties) out.push(...schemaKeys(items, `${path}[].`));
    const each = child.additionalProperties;
    if (typeof each === "object" && each !== null) {
      out.push([`${path}.<name>`, each as SchemaNode]);
      out.push(...schemaKeys(each as SchemaNode, `${path}.<name>.`));
    }
  }
  return out;
}

describe("docs/configuration.md", () => {
  const committed = readFileSync(defaultOutput(), "utf8");

  it("is what scripts/gen-config-doc.ts makes of the schema (else: npm run docs:config)", () => {
    expect(committed, "docs/configuration.md is out of date: run `npm run docs:config`").toBe(
      renderConfigReference(),
    );
  });

  it("has a description in the schema for every key", () => {
    const keys = schemaKeys(configSchema as unknown as SchemaNode);
    expect(keys.length).toBeGreaterThan(30);
    for (const [path, node] of keys) {
      expect(typeof node.description, `${path} has no description in src/config/schema.ts`).toBe(
        "string",
      );
    }
  });

  it("names every key", () => {
    for (const [path] of schemaKeys(configSchema as unknown as SchemaNode)) {
      const top = !path.includes(".") && !path.includes("[");
      // Top-level keys with a section of their own are in the top-level table.
      const shown =
        committed.includes(`### \`${path}\``) || (top && committed.includes(`[\`${path}\`]`));
      expect(shown, `${path} is not in docs/configuration.md`).toBe(true);
    }
  });

  it("links only to headings it has, and no two headings share an anchor", () => {
    const headings = [...committed.matchAll(/^#{1,4} (.+)$/gm)].map((m) => anchor(m[1]!));
    expect(new Set(headings).size).toBe(headings.length);
    for (const m of committed.matchAll(/\]\(#([^)]+)\)/g)) {
      expect(headings, `broken link #${m[1]}`).toContain(m[1]);
    }
  });
});
