/**
 * What the config directory holds and how its problems are reported: shared by the rules loader
 * and the templates loader, so neither imports the other.
 */

/** Name of the rules file inside the config directory. */
export const RULES_FILE_NAME = "rules.yaml";

/** A problem in a config file, located for the operator who has to fix it. */
export interface ConfigProblem {
  readonly file: string;
  /** 1-based; 0 when the problem has no place in the file (e.g. the file is missing). */
  readonly line: number;
  readonly column: number;
  /** Dotted path such as `rules[2].steps[0].delay`; empty for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/** `config/rules.yaml:12:7 rules[2].steps[0].delay: expected …` */
export function formatProblem(problem: ConfigProblem): string {
  const where =
    problem.line > 0 ? `${problem.file}:${problem.line}:${problem.column}` : problem.file;
  return problem.path
    ? `${where} ${problem.path}: ${problem.message}`
    : `${where} ${problem.message}`;
}
