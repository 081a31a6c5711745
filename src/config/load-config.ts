import type { RuleSet } from "../domain/rules.js";
import { loadTemplates } from "../templates/load-templates.js";
import type { TemplateSet } from "../templates/template-set.js";
import type { ConfigProblem } from "./config-files.js";
import { loadRules } from "./load-rules.js";

/** Rules and the templates they use: validated together, swapped together on reload. */
export interface FollowUpConfig {
  readonly rules: RuleSet;
  readonly templates: TemplateSet;
  /** `<rules version>+<templates version>`: logged at start and on every reload. */
  readonly version: string;
}

export type ConfigLoadResult =
  | { ok: true; config: FollowUpConfig }
  | { ok: false; problems: ConfigProblem[] };

/**
 * Loads `<dir>/rules.yaml` and `<dir>/templates/`, reporting every problem of the rules, then,
 * once they are valid, every problem of the templates (which templates and locales are needed
 * depends on the rules).
 */
export async function loadConfig(dir: string): Promise<ConfigLoadResult> {
  const rules = await loadRules(dir);
  if (!rules.ok) return rules;
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
