import { createHash } from "node:crypto";
import type { Dirent } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { type ConfigProblem, decodeConfigText } from "../config/config-files.js";
import { type LiquidEngines, TEMPLATE_LIMITS } from "./liquid-engines.js";
import {
  canonicalLocale,
  type ParsedPart,
  TEMPLATE_PARTS,
  type TemplatePart,
  type TemplateVariant,
  toTemplateError,
} from "./template-set.js";

/** Name of the templates folder inside the config directory. */
export const TEMPLATES_DIR_NAME = "templates";

const TEMPLATE_ID = /^[a-z0-9][a-z0-9-]*$/;
/** A locale as template files name it: a language of two or three letters, then subtags (de-AT). */
const LOCALE_SOURCE = "[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*";
/** A whole locale tag that template files can be named after; the rules' defaults.locale is one. */
export const LOCALE_TAG = new RegExp(`^${LOCALE_SOURCE}$`);
const FILE_NAME = new RegExp(`^(${LOCALE_SOURCE})\\.(subject|text|html)\\.liquid$`);

/** Every template variant found on disk, keyed by template id then canonical locale. */
export type VariantsById = Map<string, Map<string, TemplateVariant>>;

/** What reading the templates folder found. */
export interface TemplateFiles {
  readonly variants: VariantsById;
  readonly problems: ConfigProblem[];
  /** Files that failed to parse: the check skips rendering them. */
  readonly unparsed: ReadonlySet<string>;
  /** Hash of every file's name and content. */
  readonly version: string;
}

/**
 * Reads `<dir>/<template-id>/<locale>.<part>.liquid` and parses each file, collecting every
 * problem (bad names, syntax errors with line and column) instead of stopping at the first.
 * Dot files (editor backups, .DS_Store) and files directly in `dir` (a README) are ignored.
 */
export async function readTemplateFiles(
  dir: string,
  engines: LiquidEngines,
): Promise<TemplateFiles> {
  const variants: VariantsById = new Map();
  const problems: ConfigProblem[] = [];
  const unparsed = new Set<string>();
  const hash = createHash("sha256");
  const problem = (file: string, message: string, line = 0, column = 0) =>
    problems.push({ file, line, column, path: "", message });

  for (const entry of await listDir(dir, problem)) {
    if (entry.name.startsWith(".") || (await kindOf(dir, entry)) !== "directory") continue;
    const templateDir = path.join(dir, entry.name);
    if (!TEMPLATE_ID.test(entry.name)) {
      problem(
        templateDir,
        "a template folder is named after its template id: lower-case letters, digits and dashes, such as thank-you",
      );
      continue;
    }
    const byLocale = new Map<string, TemplateVariant>();
    const seen = new Map<string, string>();
    for (const fileEntry of await listDir(templateDir, problem)) {
      if (fileEntry.name.startsWith(".")) continue;
      const file = path.join(templateDir, fileEntry.name);
      const isFile = (await kindOf(templateDir, fileEntry)) === "file";
      const match = isFile ? FILE_NAME.exec(fileEntry.name) : null;
      const locale = match?.[1] === undefined ? undefined : canonicalLocale(match[1]);
      const part = match?.[2] as TemplatePart | undefined;
      if (locale === undefined || part === undefined) {
        problem(
          file,
          `unexpected ${isFile ? "file" : "entry"}: expected files named <locale>.<part>.liquid, where part is ${TEMPLATE_PARTS.join(", ")} (such as en.text.liquid or de-AT.subject.liquid)`,
        );
        continue;
      }
      const key = `${locale}.${part}`;
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        problem(file, `${path.basename(earlier)} is the same locale and part; keep one of them`);
        continue;
      }
      seen.set(key, file);
      const source = await readText(file, problem);
      if (source === undefined) continue;
      hash.update(`${entry.name}/${fileEntry.name}\0${source}\0`);
      const parsed = parsePart(engines, entry.name, file, part, source);
      if ("problem" in parsed) {
        problems.push(parsed.problem);
        unparsed.add(file);
      }
      const variant = byLocale.get(locale) ?? { templateId: entry.name, locale, parts: {} };
      byLocale.set(locale, { ...variant, parts: { ...variant.parts, [part]: parsed.part } });
    }
    variants.set(entry.name, byLocale);
  }
  return { variants, problems, unparsed, version: hash.digest("hex").slice(0, 12) };
}

function parsePart(
  engines: LiquidEngines,
  templateId: string,
  file: string,
  part: TemplatePart,
  source: string,
): { part: ParsedPart } | { part: ParsedPart; problem: ConfigProblem } {
  const engine = part === "html" ? engines.html : engines.text;
  try {
    return { part: { file, template: engine.parse(source, file) } };
  } catch (error) {
    const located = toTemplateError(error, templateId, file);
    const message = located.message.startsWith("parse length limit exceeded")
      ? `too long: ${source.length} characters; a template file may have at most ${TEMPLATE_LIMITS.parseLimit} (a message that large is clipped by mail clients anyway)`
      : `Liquid: ${located.message}`;
    return {
      part: { file, template: [] },
      problem: { file, line: located.line, column: located.column, path: "", message },
    };
  }
}

/**
 * A folder entry's kind, following a symbolic link: volume mounts (Kubernetes ConfigMaps) and
 * release layouts link template files and folders, and the watcher follows links as well.
 */
async function kindOf(dir: string, entry: Dirent): Promise<"file" | "directory" | "other"> {
  let target: { isFile(): boolean; isDirectory(): boolean } = entry;
  if (entry.isSymbolicLink()) {
    try {
      target = await stat(path.join(dir, entry.name));
    } catch {
      return "other"; // A link to nothing.
    }
  }
  return target.isFile() ? "file" : target.isDirectory() ? "directory" : "other";
}

type Report = (file: string, message: string, line?: number, column?: number) => void;

/** Sorted entries of a folder; a missing folder reads as empty (missing templates are reported). */
async function listDir(dir: string, report: Report): Promise<Dirent[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.sort((a, b) => a.name.localeCompare(b.name));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") report(dir, `cannot read this folder (${code ?? String(error)})`);
    return [];
  }
}

async function readText(file: string, report: Report): Promise<string | undefined> {
  try {
    const decoded = decodeConfigText(await readFile(file));
    if (decoded.ok) return decoded.text;
    // Reported, and checked further as read, so the file is not also reported missing.
    report(file, decoded.message, decoded.line, decoded.column);
    return decoded.lossyText;
  } catch (error) {
    report(
      file,
      `cannot read this file (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    );
    return undefined;
  }
}
