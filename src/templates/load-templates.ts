import path from "node:path";
import { type ConfigProblem, RULES_FILE_NAME } from "../config/config-files.js";
import type { RuleSet } from "../domain/rules.js";
import { checkTemplates } from "./check-templates.js";
import { createLiquidEngines } from "./liquid-engines.js";
import { readTemplateFiles, TEMPLATES_DIR_NAME } from "./read-template-files.js";
import { canonicalLocale, TemplateSet } from "./template-set.js";

export type TemplatesLoadResult =
  | { ok: true; templates: TemplateSet }
  | { ok: false; problems: ConfigProblem[] };

/**
 * Reads and checks `<configDir>/templates` against the rules that use it, reporting every problem
 * at once: what `followups check` prints and what a hot reload refuses to switch to.
 */
export async function loadTemplates(
  configDir: string,
  rules: RuleSet,
  /** The clock renders are timed by (ms; CheckSettings.clock). */
  options: { readonly clock?: () => number } = {},
): Promise<TemplatesLoadResult> {
  const dir = path.join(configDir, TEMPLATES_DIR_NAME);
  const defaultLocale = canonicalLocale(rules.defaults.locale);
  if (defaultLocale === undefined) {
    return {
      ok: false,
      problems: [
        {
          file: path.join(configDir, RULES_FILE_NAME),
          line: 0,
          column: 0,
          path: "defaults.locale",
          message: `expected a BCP 47 locale such as en or de-AT, got ${JSON.stringify(rules.defaults.locale)}`,
        },
      ],
    };
  }
  const engines = createLiquidEngines();
  const files = await readTemplateFiles(dir, engines);
  const problems = [
    ...files.problems,
    ...(await checkTemplates(files, {
      dir,
      rulesFile: path.join(configDir, RULES_FILE_NAME),
      rules,
      defaultLocale,
      engines,
      ...(options.clock && { clock: options.clock }),
    })),
  ];
  if (problems.length > 0) {
    return {
      ok: false,
      problems: problems.sort(
        (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column,
      ),
    };
  }
  return {
    ok: true,
    templates: new TemplateSet(files.variants, defaultLocale, files.version, engines),
  };
}
