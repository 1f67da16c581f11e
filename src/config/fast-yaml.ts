/**
 * The fast path of reading YAML: js-yaml, several times faster than building
 * yaml's Document, for the common well-formed file (a start-up or reload of a
 * thousand exports feels the difference: see docs/architecture.md). Anything
 * unusual goes to the Document path (read-yaml.ts), which has the positions
 * for diagnostics and guards against alias bombs.
 */
import { FAILSAFE_SCHEMA, load as loadYamlData, Type as YamlType } from "js-yaml";

/**
 * YAML 1.2's core schema exactly as the `yaml` package resolves it (js-yaml's
 * own core schema also takes 0b101, +0x10 and friends as numbers), so both
 * paths read a file the same way.
 */
const coreScalar = (tag: string, re: RegExp, construct: (s: string) => unknown) =>
  new YamlType(`tag:yaml.org,2002:${tag}`, {
    kind: "scalar",
    resolve: (s: string | null) => s !== null && re.test(s),
    construct: (s: string | null) => construct(s ?? ""),
  });
const YAML_CORE = FAILSAFE_SCHEMA.extend({
  implicit: [
    coreScalar("null", /^(?:~|null|Null|NULL|)$/, () => null),
    coreScalar(
      "bool",
      /^(?:true|True|TRUE|false|False|FALSE)$/,
      (s) => s[0] === "t" || s[0] === "T",
    ),
    coreScalar("int", /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/, (s) =>
      s.startsWith("0o") ? Number.parseInt(s.slice(2), 8) : Number(s),
    ),
    coreScalar(
      "float",
      /^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/,
      (s) => {
        const v = s.replace(/^([-+]?)\.(inf|Inf|INF)$/, "$1Infinity");
        return /nan$/i.test(v) ? Number.NaN : Number(v);
      },
    ),
  ],
});

/**
 * A directive (`%YAML 1.1` changes how scalars resolve) or a line starting
 * inside a flow collection (js-yaml accepts indentation yaml refuses).
 */
const DIRECTIVE_OR_FLOW_LINE = /^(%|\s*[[\]{}])/m;

/** An anchor, alias or tag at the start of a token: such files take the careful path. */
const ANCHOR_ALIAS_OR_TAG = /(^|[\s[{,:-])[&*!]/;

/**
 * The plain data of a well-formed file; undefined when the text has any
 * problem, anchors, aliases or tags, so the Document path reports it.
 */
export function fastData(text: string): { data: unknown } | undefined {
  if (ANCHOR_ALIAS_OR_TAG.test(text) || DIRECTIVE_OR_FLOW_LINE.test(text)) return undefined;
  try {
    return { data: loadYamlData(text, { schema: YAML_CORE }) ?? null };
  } catch {
    return undefined;
  }
}
