import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import {
  type Alias,
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
} from "yaml";
import type { z } from "zod";
import { cutText } from "../domain/cut-text.js";
import { editDistance } from "../domain/edit-distance.js";
import type { RuleSet } from "../domain/rules.js";
import { formatPath } from "../domain/shown-path.js";
import { compileRules } from "./compile-rules.js";
import { type ConfigProblem, decodeConfigText, RULES_FILE_NAME } from "./config-files.js";
import { allowedRuleFileKeys } from "./json-schemas.js";
import { crossFieldProblems, rulesFileSchema } from "./rules-file.js";

export type RulesLoadResult =
  | { ok: true; rules: RuleSet; file: string }
  | { ok: false; problems: ConfigProblem[] };

/** Reads and validates `<configDir>/rules.yaml`, reporting every problem at once. */
export async function loadRules(configDir: string): Promise<RulesLoadResult> {
  const file = path.join(configDir, RULES_FILE_NAME);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // `--config config/rules.yaml`: the file named where its folder is wanted.
    if (code === "ENOTDIR")
      return {
        ok: false,
        problems: [
          {
            file: configDir,
            line: 0,
            column: 0,
            path: "",
            message:
              "is a file: --config and CONFIG_DIR name the folder holding rules.yaml and templates/",
          },
        ],
      };
    // No config folder at all: most often a command run from another directory than the one
    // holding config/, so say where it looked and how to name the folder.
    if (code === "ENOENT" && !(await isFolder(configDir)))
      return {
        ok: false,
        problems: [
          {
            file,
            line: 0,
            column: 0,
            path: "",
            message: `file not found: there is no folder ${path.resolve(configDir)}; name the folder holding rules.yaml and templates/ with --config DIR or CONFIG_DIR`,
          },
        ],
      };
    const reason =
      code === "ENOENT"
        ? "file not found"
        : code === "EISDIR"
          ? "is a directory, expected a file"
          : String(error);
    return { ok: false, problems: [{ file, line: 0, column: 0, path: "", message: reason }] };
  }
  const decoded = decodeConfigText(bytes);
  if (!decoded.ok) {
    const { line, column, message } = decoded;
    return { ok: false, problems: [{ file, line, column, path: "", message }] };
  }
  return parseRules(decoded.text, file);
}

/** Whether a path names a folder (following links); false for a file or nothing there. */
export async function isFolder(candidate: string): Promise<boolean> {
  try {
    return (await stat(candidate)).isDirectory();
  } catch {
    return false;
  }
}

/** Validates rules-file text; `file` is only used to name the file in problems. */
export function parseRules(text: string, file: string): RulesLoadResult {
  const lineCounter = new LineCounter();
  // Merge keys (`<<: *window`) are YAML 1.1's, and common in hand-written files: they are read.
  // Values are typed as YAML 1.2 reads them whatever a `%YAML 1.1` line says: 1.1 would turn
  // `2026-12-25` into a timestamp, `08:00` into 480 and the country code `NO` into false.
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    merge: true,
    schema: "core",
  });
  const syntax = [...doc.errors];
  if (syntax.length > 0) {
    return {
      ok: false,
      problems: syntax.map((error) => {
        const at = lineCounter.linePos(error.pos[0]);
        // A key given twice: name it and where it is, as every other problem is named.
        const duplicate = error.code === "DUPLICATE_KEY" ? keyPathAt(doc, error.pos[0]) : undefined;
        return {
          file,
          line: at.line,
          column: at.col,
          path: duplicate ? formatPath(duplicate) : "",
          message: duplicate
            ? `duplicate key ${JSON.stringify(String(duplicate[duplicate.length - 1]))}: a key may appear once in a mapping`
            : `YAML: ${firstLine(error.message)}`,
        };
      }),
    };
  }
  const merge = mergeProblem(doc, lineCounter, file);
  if (merge) return { ok: false, problems: [merge] };
  let data: unknown;
  try {
    // yaml counts an anchor as one of its own uses: + 1 lets exactly the limit through.
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS + 1 });
  } catch (error) {
    if (!(error instanceof ReferenceError)) throw error;
    return { ok: false, problems: [aliasProblem(doc, lineCounter, file)] };
  }
  const locate = (keyPath: readonly PropertyKey[]) => locateInDocument(doc, lineCounter, keyPath);

  if (data === null || data === undefined || typeof data !== "object" || Array.isArray(data)) {
    const got = data === null || data === undefined ? "an empty file" : preview(data);
    return {
      ok: false,
      problems: [
        {
          file,
          line: 1,
          column: 1,
          path: "",
          message: `expected a mapping with version, defaults and rules, got ${got}`,
        },
      ],
    };
  }
  const parsed = rulesFileSchema.safeParse(data, { reportInput: true, error: operatorMessage });
  const crossField = crossFieldProblems(data).map((p) => ({
    file,
    ...locate(p.path),
    path: formatPath(p.path),
    message: p.message,
  }));
  if (!parsed.success || crossField.length > 0) {
    const shape = parsed.success
      ? []
      : parsed.error.issues.flatMap((i) => issueProblems(i, file, locate));
    return { ok: false, problems: sortByPosition([...shape, ...crossField]) };
  }
  const version = createHash("sha256").update(text).digest("hex").slice(0, 12);
  const compiled = compileRules(parsed.data, version);
  if (!compiled.ok) {
    return {
      ok: false,
      problems: compiled.problems.map((p) => ({
        file,
        ...locate(p.path),
        path: formatPath(p.path),
        message: p.message,
      })),
    };
  }
  return { ok: true, rules: compiled.rules, file };
}

/**
 * A merge key whose value is not a mapping (`<<: hello`, or an alias of a list), which yaml
 * cannot merge: located at that value, instead of a crash in toJS.
 */
function mergeProblem(
  doc: ReturnType<typeof parseDocument>,
  lineCounter: LineCounter,
  file: string,
): ConfigProblem | undefined {
  // An alias without its anchor is aliasProblem's to report.
  const resolved = (node: unknown) => (isAlias(node) ? node.resolve(doc) : node);
  const mergeable = (node: unknown) => {
    const source = resolved(node);
    return source === undefined || isMap(source);
  };
  const describe = (node: unknown): string => {
    if (isAlias(node)) return `*${node.source}, which is ${describe(resolved(node))}`;
    if (isSeq(node)) return "a list";
    if (isScalar(node) && node.value !== null) return preview(node.value);
    return "nothing";
  };
  let found: { path: (string | number)[]; value: unknown; at?: number } | undefined;
  visit(doc, {
    Pair(_, pair, ancestors) {
      if (!isScalar(pair.key) || typeof pair.key.value !== "symbol") return undefined;
      const source = resolved(pair.value);
      // A list (or an alias of one) merges each of its mappings.
      const items: unknown[] = isSeq(source) ? source.items : [pair.value];
      const bad = items.find((item) => !mergeable(item));
      if (bad === undefined) return undefined;
      const node = isNode(bad) && isSeq(pair.value) ? bad : pair.value;
      const at = (isNode(node) ? node.range?.[0] : undefined) ?? pair.key.range?.[0];
      found = { path: [...pathTo(ancestors), "<<"], value: bad, ...(at !== undefined && { at }) };
      return visit.BREAK;
    },
  });
  if (!found) return undefined;
  const at = found.at !== undefined ? lineCounter.linePos(found.at) : { line: 1, col: 1 };
  const got = describe(found.value);
  return {
    file,
    line: at.line,
    column: at.col,
    path: formatPath(found.path),
    message: `YAML: a merge key takes a mapping, an alias of one or a list of them, such as <<: *window; got ${got}`,
  };
}

/** How many times aliases may be expanded in all: a bound on "billion laughs" alias bombs. */
const MAX_ALIAS_EXPANSIONS = 100;

/**
 * The problem behind a ReferenceError of toJS, located at its alias: the first one without an
 * anchor before it, or the one with which the aliases, counted as they expand (an alias inside
 * an anchored value expands again with every use of it), pass the limit.
 */
function aliasProblem(
  doc: ReturnType<typeof parseDocument>,
  lineCounter: LineCounter,
  file: string,
): ConfigProblem {
  const anchored = new Map<string, Node>();
  const expansions = new Map<Alias, number>();
  let total = 0;
  let found: { alias: Alias; unresolved: boolean } | undefined;
  visit(doc, {
    Node(_key, node) {
      if (!isAlias(node)) {
        if (node.anchor) anchored.set(node.anchor, node);
        return undefined;
      }
      const source = anchored.get(node.source);
      if (!source) {
        found = { alias: node, unresolved: true };
        return visit.BREAK;
      }
      let count = 1;
      visit(source, {
        Alias(_inner, inner) {
          count += expansions.get(inner) ?? 1;
        },
      });
      expansions.set(node, count);
      total += count;
      if (total <= MAX_ALIAS_EXPANSIONS) return undefined;
      found = { alias: node, unresolved: false };
      return visit.BREAK;
    },
  });
  const alias = found?.alias ?? expansions.keys().next().value;
  const at = alias?.range ? lineCounter.linePos(alias.range[0]) : { line: 1, col: 1 };
  if (found?.unresolved) {
    const name = found.alias.source;
    return {
      file,
      line: at.line,
      column: at.col,
      path: "",
      message: `YAML: unknown alias *${name}: no anchor &${name} before it`,
    };
  }
  const where = found ? `with this *${found.alias.source}, ` : "";
  return {
    file,
    line: at.line,
    column: at.col,
    path: "",
    message: `YAML: too many alias expansions: ${where}aliases in this file expand more than ${MAX_ALIAS_EXPANSIONS} times; write the values out or nest fewer aliases`,
  };
}

/** Replaces zod's generic wording ("Invalid input: expected number, received string") with plain words. */
function operatorMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type":
      return issue.input === undefined
        ? `required: expected ${TYPE_WORDS[issue.expected] ?? issue.expected}`
        : `expected ${TYPE_WORDS[issue.expected] ?? issue.expected}, ${gotValue(issue.input)}`;
    case "too_small":
      return `expected ${issue.origin === "number" ? `a number of at least ${issue.minimum}` : `at least ${issue.minimum} ${UNIT_WORDS[issue.origin] ?? "entries"}`}`;
    case "too_big":
      return `expected ${issue.origin === "number" ? `a number of at most ${issue.maximum}` : `at most ${issue.maximum} ${UNIT_WORDS[issue.origin] ?? "entries"}`}`;
    case "invalid_value":
      return `expected ${issue.values.map((v) => JSON.stringify(v)).join(" or ")}`;
    default:
      return undefined;
  }
}

const TYPE_WORDS: Record<string, string> = {
  number: "a number",
  string: "a text value",
  boolean: "true or false",
  array: "a list",
  object: "a mapping of keys to values",
};
const UNIT_WORDS: Record<string, string> = {
  string: "characters",
  array: "entries",
  set: "entries",
};

type Locate = (keyPath: readonly PropertyKey[]) => { line: number; column: number };

function issueProblems(issue: z.core.$ZodIssue, file: string, locate: Locate): ConfigProblem[] {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => {
      const keyPath = [...issue.path, key];
      return {
        file,
        ...locate(keyPath),
        path: formatPath(keyPath),
        message: `unknown key ${JSON.stringify(key)}; ${suggestKey(key, issue.path)}`,
      };
    });
  }
  if (issue.code === "invalid_key") {
    const inner = issue.issues[0]?.message ?? issue.message;
    return [
      {
        file,
        ...locate(issue.path),
        path: formatPath(issue.path),
        message: inner.includes("got ") ? inner : `${inner} (got ${preview(issue.input)})`,
      },
    ];
  }
  const meant = issue.code === "invalid_union" ? branchMeant(issue) : undefined;
  if (meant) {
    // Its problems are inside the value, at the key or item they concern.
    return meant.flatMap((inner) =>
      issueProblems({ ...inner, path: [...issue.path, ...inner.path] }, file, locate),
    );
  }
  if (issue.code === "invalid_union" && issue.message === "Invalid input") {
    return [
      { file, ...locate(issue.path), path: formatPath(issue.path), message: describeUnion(issue) },
    ];
  }
  const value = issue.input;
  const shown = value === undefined ? "missing" : gotValue(value);
  const message =
    issue.message.includes("got ") || issue.message.startsWith("required")
      ? issue.message
      : `${issue.message} (${shown})`;
  return [{ file, ...locate(issue.path), path: formatPath(issue.path), message }];
}

/**
 * The one alternative of a union that took the value's shape and found problems inside it (a
 * threshold given per currency, with a currency code that is none): its problems say more than
 * the union's list of what was expected.
 */
function branchMeant(issue: z.core.$ZodIssueInvalidUnion): z.core.$ZodIssue[] | undefined {
  const inside = issue.errors.filter(
    (branch) => branch.length > 0 && branch.every((inner) => inner.path.length > 0),
  );
  return inside.length === 1 ? inside[0] : undefined;
}

function describeUnion(issue: z.core.$ZodIssueInvalidUnion): string {
  const expected = issue.errors.flatMap((branch) => branch.map((inner) => inner.message));
  return `expected one of: ${[...new Set(expected)].join(" | ")} (${gotValue(issue.input)})`;
}

/** " (did you mean "anyItem"?)" for a near miss among the keys allowed at that spot, else the list. */
function suggestKey(key: string, parentPath: readonly PropertyKey[]): string {
  const allowed = allowedRuleFileKeys(parentPath).filter((name) => name !== "$schema");
  let best: { name: string; distance: number } | undefined;
  for (const name of allowed) {
    const distance = editDistance(key.toLowerCase(), name.toLowerCase());
    if (distance <= 2 && (!best || distance < best.distance)) best = { name, distance };
  }
  if (best) return `did you mean ${JSON.stringify(best.name)}?`;
  return allowed.length > 0 ? `allowed here: ${allowed.join(", ")}` : "no keys are allowed here";
}

/** The path of the map key whose node starts at `offset` (a duplicate key), if one does. */
function keyPathAt(
  doc: ReturnType<typeof parseDocument>,
  offset: number,
): (string | number)[] | undefined {
  let found: (string | number)[] | undefined;
  visit(doc, {
    Pair(_, pair, ancestors) {
      const key = pair.key;
      if (!isScalar(key) || key.range?.[0] !== offset) return undefined;
      found = [...pathTo([...ancestors, pair]), String(key.value)];
      return visit.BREAK;
    },
  });
  return found;
}

/** The keys and indices down to the node whose ancestors (from the document down) these are. */
function pathTo(ancestors: readonly unknown[]): (string | number)[] {
  const keys: (string | number)[] = [];
  ancestors.forEach((node, i) => {
    const next = ancestors[i + 1];
    if (isPair(node) && isScalar(node.key) && next !== undefined) keys.push(String(node.key.value));
    if (isSeq(node)) keys.push(node.items.indexOf(next as never));
  });
  return keys;
}

/** Line and column of the deepest node on `keyPath` that exists (the key itself when it does). */
function locateInDocument(
  doc: ReturnType<typeof parseDocument>,
  lineCounter: LineCounter,
  keyPath: readonly PropertyKey[],
): { line: number; column: number } {
  for (let depth = keyPath.length; depth >= 0; depth--) {
    const prefix = keyPath.slice(0, depth) as (string | number)[];
    const node = prefix.length === 0 ? doc.contents : doc.getIn(prefix, true);
    if (isNode(node) && node.range) {
      const keyNode = depth === keyPath.length ? findKeyNode(doc, prefix) : undefined;
      const at = lineCounter.linePos((keyNode ?? node).range?.[0] ?? node.range[0]);
      return { line: at.line, column: at.col };
    }
    if (depth > 0 && depth === keyPath.length) {
      const keyNode = findKeyNode(doc, prefix);
      if (keyNode?.range) {
        const at = lineCounter.linePos(keyNode.range[0]);
        return { line: at.line, column: at.col };
      }
    }
  }
  return { line: 1, column: 1 };
}

/** The key node of a map entry, so "unknown key" points at the key, not at its value. */
function findKeyNode(doc: ReturnType<typeof parseDocument>, keyPath: readonly (string | number)[]) {
  const parentPath = keyPath.slice(0, -1);
  const last = keyPath[keyPath.length - 1];
  const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
  if (!parent || typeof parent !== "object" || !("items" in parent) || typeof last !== "string")
    return undefined;
  for (const pair of (parent as { items: unknown[] }).items) {
    const key = (pair as { key?: unknown }).key;
    if (isNode(key) && "value" in key && (key as { value: unknown }).value === last) return key;
  }
  return undefined;
}

function sortByPosition(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}

function preview(value: unknown): string {
  // JSON has no infinity or NaN: they are shown as YAML writes them, not as JSON's null.
  const text =
    JSON.stringify(value instanceof Set ? [...value] : value, (_, inner) =>
      typeof inner === "number" && !Number.isFinite(inner)
        ? `${NON_FINITE}${yamlNumber(inner)}`
        : inner,
    )?.replace(new RegExp(`"${NON_FINITE}([^"]*)"`, "g"), "$1") ?? String(value);
  return text.length > 80 ? `${cutText(text, 77)}...` : text;
}

/** Marks a non-finite number in preview's JSON: a private-use character JSON leaves as it is. */
const NON_FINITE = "\u{E000}";

function yamlNumber(value: number): string {
  if (Number.isNaN(value)) return ".nan";
  return value > 0 ? ".inf" : "-.inf";
}

/**
 * "got" and the value; YAML's `.inf`, `-.inf` and `.nan` are numbers to YAML, so the message
 * says that no field takes them, where "expected a number, got .inf" would be a riddle.
 */
function gotValue(value: unknown): string {
  if (typeof value !== "number" || Number.isFinite(value)) return `got ${preview(value)}`;
  const what = Number.isNaN(value) ? "not-a-number" : value > 0 ? "infinity" : "minus infinity";
  return `got ${yamlNumber(value)}, YAML's ${what}, which no field takes`;
}

function firstLine(text: string): string {
  return text.split("\n")[0] ?? text;
}
