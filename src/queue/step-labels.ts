import type { RuleSet } from "../domain/rules.js";
import { findStep, ruleIdOf } from "../domain/step-ref.js";
import type { StepRecord } from "../store/step-record.js";

/** What the ledger and metrics count a step under. */
export interface StepLabels {
  readonly channel: string;
  readonly kind: string;
  readonly ruleId: string;
}

/**
 * A step's channel and kind as its record says (planned then, so a rule removed since still
 * counts under its own name), else as today's rules say (records written before December 2026),
 * else `unknown`.
 */
export function stepLabels(rules: RuleSet, stepId: string, record?: StepRecord): StepLabels {
  const planned = record?.channel && record.kind ? record : findStep(rules, stepId)?.step;
  return {
    channel: planned?.channel ?? "unknown",
    kind: planned?.kind ?? "unknown",
    ruleId: ruleIdOf(stepId),
  };
}
