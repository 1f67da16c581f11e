/**
 * Phase 1 of loading: YAML text -> plain data. A well-formed file takes the
 * fast path (fast-yaml.ts); anything else is read with yaml's Document, whose
 * errors carry positions, and is reported here.
 */
import { isAlias, visit, type YAMLError } from "yaml";
import { type Diagnostic, formatPath, type PathSegment, type Severity } from "./diagnostics.js";
import { fastData } from "./fast-yaml.js";
import type { Report } from "./report.js";
import { firstKeyOffset, pathAt } from "./yaml-pos.js";

/**
 * The document as plain data; undefined after reporting problems that make it
 * untrustworthy for further checks (a duplicate key alone is not one).
 */
export function readYaml(report: Report): { data: unknown } | undefined {
  const fast = fastData(report.text);
  if (fast !== undefined) return fast;
  const doc = report.doc;
  let fatal = false;
  const deeper = new Set<number>();
  for (const e of doc.errors) {
    if (e.code !== "DUPLICATE_KEY") fatal = true;
    const d = deeperKey(report, e);
    if (d === undefined) yamlProblem(report, "error", e);
    else if (!deeper.has(d.line)) {
      deeper.add(d.line);
      report.add(d);
    }
  }
  for (const w of doc.warnings) yamlProblem(report, "warning", w);
  if (fatal) return undefined;

  let unresolved = false;
  visit(doc, {
    Alias: (_key, node) => {
      if (isAlias(node) && node.resolve(doc) === undefined) {
        unresolved = true;
        report.add({
          severity: "error",
          file: report.file,
          ...report.at(node.range?.[0] ?? 0),
          path: "",
          message: `unknown alias *${node.source}`,
          hint: `define the anchor &${node.source} before using it`,
        });
      }
    },
  });
  if (unresolved) return undefined;

  try {
    return { data: doc.toJS({ maxAliasCount: 10000 }) };
  } catch (err) {
    report.documentError(`cannot read the YAML document: ${(err as Error).message}`);
    return undefined;
  }
}

/** What usually causes a YAML syntax error, by the yaml library's code and message. */
function syntaxHint(code: string, message: string): string | undefined {
  if (code === "TAB_AS_INDENT") return "indent with spaces";
  if (code === "MULTIPLE_DOCS") return "put everything in one document";
  if (/^Missing closing|end with a [\]}]/.test(message)) {
    return "a quote or bracket opened earlier is never closed";
  }
  if (code === "BAD_INDENT" || /without - indicator|same column|indented/.test(message)) {
    return "check the indentation of this line against the lines above";
  }
  if (/^Nested mappings/.test(message)) return "quote a value that contains `: `";
  if (/^Implicit map keys need/.test(message))
    return "write `key: value`, with a space after the colon";
  if (/^Comments must be separated/.test(message)) return "put a space before `#`";
  if (/^Plain value cannot start/.test(message)) return "quote the value";
  return undefined;
}

/**
 * A key indented deeper than the key on the line above. yaml takes it for part of
 * that key's value and reports a "compact mapping" on the line above; the mistake
 * is on the deeper line, so that is where it is reported.
 */
function deeperKey(report: Report, e: YAMLError): Diagnostic | undefined {
  if (!/^(Nested mappings are not allowed|Implicit keys need to be)/.test(e.message)) return;
  const lines = report.text.split(/\r?\n/);
  const at = report.at(e.pos[0]).line - 1;
  const above = /^( *(?:- +)?)([^\s#:][^:]*?):( |$)/.exec(lines[at] ?? "");
  if (!above) return;
  let next = at + 1;
  while (next < lines.length && /^\s*(#.*)?$/.test(lines[next]!)) next++;
  const key = /^( *)([^\s#:-][^:]*?):( |$)/.exec(lines[next] ?? "");
  const want = above[1]!.length;
  if (!key || key[1]!.length <= want) return;
  return {
    severity: "error",
    file: report.file,
    line: next + 1,
    column: key[1]!.length + 1,
    path: "",
    message: `YAML syntax: \`${key[2]}:\` is indented ${key[1]!.length} spaces, deeper than \`${above[2]}:\` on the line above (${want})`,
    hint: `keys of one mapping line up: give \`${key[2]}:\` the indentation of \`${above[2]}:\` (${want > 0 ? `${want} spaces` : "none"}); to nest it under \`${above[2]}:\`, that key must have no value of its own`,
  };
}

function yamlProblem(report: Report, severity: Severity, e: YAMLError): void {
  const offset = e.pos[0];
  const raw = (e.message.split("\n")[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, "");
  // Syntax errors are about the text, not keys: a key path would often name the line
  // where the parser noticed, not the one at fault. Duplicate keys are the exception.
  let path: PathSegment[] = [];
  let message = `YAML syntax: ${raw}`;
  let hint = syntaxHint(e.code, raw);
  if (e.code === "DUPLICATE_KEY") {
    path = pathAt(report.doc, offset);
    message = `duplicate key \`${String(path[path.length - 1])}\``;
    const first = firstKeyOffset(report.doc, path);
    hint =
      first !== undefined && first !== offset
        ? `it is already set on line ${report.at(first).line}; keep only one`
        : "keep only one";
  } else if (e.code === "TAB_AS_INDENT") {
    message = "YAML syntax: a tab is used for indentation";
  } else if (e.code === "MULTIPLE_DOCS") {
    message = "YAML syntax: the file holds more than one YAML document (a second `---`)";
  }
  const d: Diagnostic = {
    severity,
    file: report.file,
    ...report.at(offset),
    path: formatPath(path),
    message,
  };
  if (hint) d.hint = hint;
  report.add(d);
}
