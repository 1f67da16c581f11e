/**
 * Command-line parsing shared by aoed and aoectl: a mistake on the command line
 * is the user's, so it gets one line on stderr and exit status 2, never a stack.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { didYouMean } from "../config/diagnostics.js";

/** Exits 2 with `tool: message`; `message` may carry a usage text on later lines. */
export function usageError(tool: string, message: string): never {
  process.stderr.write(`${tool}: ${message}\n`);
  process.exit(2);
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** node:util's parseArgs, with its errors turned into usage errors that name the option. */
export function parseCommandLine<O extends Options>(tool: string, options: O, args?: string[]) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const quoted = /'([^']*)'/.exec(e.message)?.[1] ?? "";
    const option = /--[\w-]+/.exec(quoted)?.[0] ?? quoted;
    if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const long = Object.keys(options).map((k) => `--${k}`);
      const near = option.startsWith("--") ? didYouMean(option, long) : undefined;
      usageError(
        tool,
        `unknown option ${option}${near ? `; did you mean ${near}?` : ""} (see ${tool} --help)`,
      );
    }
    if (e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE")
      usageError(
        tool,
        /argument missing/.test(e.message)
          ? `option ${option} needs a value (see ${tool} --help)`
          : `option ${option} takes no value (see ${tool} --help)`,
      );
    usageError(tool, `${e.message.split(". ")[0]} (see ${tool} --help)`);
  }
}
