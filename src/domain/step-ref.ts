import type { Rule, RuleSet, StepSpec } from "./rules.js";

/**
 * A planned step is named `<ruleId>.<stepId>` (`big-ticket.check-in`): stable across rule edits
 * that keep the ids, so a step planned months ago is found again in today's rules.
 */

/** The plan's id for a rule's step. */
export function stepIdOf(rule: Pick<Rule, "id">, step: Pick<StepSpec, "id">): string {
  return `${rule.id}.${step.id}`;
}

/** The id of the step planned for a call step's fallback (`check-in` → `check-in-fallback`). */
export function fallbackStepId(stepId: string): string {
  return `${stepId}-fallback`;
}

/** The rule id part of a step id (`big-ticket.check-in` → `big-ticket`). */
export function ruleIdOf(stepId: string): string {
  const dot = stepId.indexOf(".");
  return dot < 0 ? stepId : stepId.slice(0, dot);
}

/** Looks a planned step up in the current rules by its stable id. */
export function findStep(
  rules: RuleSet,
  stepId: string,
): { rule: Rule; step: StepSpec } | undefined {
  for (const rule of rules.rules) {
    for (const step of rule.steps) {
      if (stepIdOf(rule, step) === stepId) return { rule, step };
    }
  }
  return undefined;
}
