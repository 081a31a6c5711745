import path from "node:path";
import type { RuleSet } from "../domain/rules.js";
import { createLiquidEngines } from "../templates/liquid-engines.js";
import { loadTemplates } from "../templates/load-templates.js";
import { readTemplateFiles, TEMPLATES_DIR_NAME } from "../templates/read-template-files.js";
import type { TemplateSet } from "../templates/template-set.js";
import type { ConfigProblem } from "./config-files.js";
import { isFolder, loadRules } from "./load-rules.js";

/** Rules and the templates they use: validated together, swapped together on reload. */
export interface FollowUpConfig {
  readonly rules: RuleSet;
  readonly templates: TemplateSet;
  /** `<rules version>+<templates version>`: logged at start and on every reload. */
  readonly version: string;
}

export type ConfigLoadResult =
  | { ok: true; config: FollowUpConfig }
  | {
      ok: false;
      problems: ConfigProblem[];
      /**
       * The rules were invalid, so the templates there are were checked on their own only (file
       * names, Liquid syntax): which templates and locales the rules need, and rendering them,
       * wait for valid rules.
       */
      templatesOnTheirOwn?: true;
    };

/**
 * Loads `<dir>/rules.yaml` and `<dir>/templates/`, reporting every problem of the rules, then
 * every problem of the templates: against the rules once they are valid (which templates and
 * locales are needed depends on them), else on their own (file names, Liquid syntax), so that
 * one run of `check` shows as much as it can.
 */
export async function loadConfig(dir: string): Promise<ConfigLoadResult> {
  const rules = await loadRules(dir);
  if (!rules.ok) {
    // A file named in place of the folder (`--config config/rules.yaml`), or no folder at all:
    // its rules' problem says so, and there is no templates/ beside it to check.
    if (!(await isFolder(dir))) return rules;
    const files = await readTemplateFiles(
      path.join(dir, TEMPLATES_DIR_NAME),
      createLiquidEngines(),
    );
    if (files.variants.size === 0 && files.problems.length === 0) return rules;
    return {
      ok: false,
      problems: [...rules.problems, ...files.problems],
      templatesOnTheirOwn: true,
    };
  }
  const templates = await loadTemplates(dir, rules.rules);
  if (!templates.ok) return templates;
  return {
    ok: true,
    config: {
      rules: rules.rules,
      templates: templates.templates,
      version: `${rules.rules.version}+${templates.templates.version}`,
    },
  };
}
