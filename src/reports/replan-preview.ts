import { Duration } from "luxon";

/** One scheduled step and what newer rules would do with it. */
export interface PreviewedStep {
  readonly ruleId: string;
  readonly action: "keep" | "move" | "cancel" | "skip";
  /** New due time minus the planned one (ms), for moved steps. */
  readonly shiftMs: number;
  /** Reason code of a cancelled or skipped step. */
  readonly code?: string;
}

/** Moved steps in one direction. */
export interface Shift {
  readonly count: number;
  /** ISO 8601 durations of the smallest and largest move, absent when none moved. */
  readonly smallest?: string;
  readonly largest?: string;
}

/** One rule's line of `followups replan --dry-run --json`. */
export interface RulePreview {
  readonly ruleId: string;
  readonly unchanged: number;
  readonly earlier: Shift;
  readonly later: Shift;
  readonly cancelled: number;
  readonly skipped: number;
  /** Cancelled and skipped steps by reason code (`rule-removed`, `no-longer-matches`, `past-due`). */
  readonly reasons: Readonly<Record<string, number>>;
}

/** Sums previewed steps per rule, sorted by rule id. */
export function previewByRule(steps: readonly PreviewedStep[]): RulePreview[] {
  const byRule = new Map<string, PreviewedStep[]>();
  for (const step of steps) byRule.set(step.ruleId, [...(byRule.get(step.ruleId) ?? []), step]);
  return [...byRule.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([ruleId, ruleSteps]) => {
      const reasons: Record<string, number> = {};
      for (const step of ruleSteps)
        if (step.code) reasons[step.code] = (reasons[step.code] ?? 0) + 1;
      const moved = ruleSteps.filter((s) => s.action === "move");
      return {
        ruleId,
        unchanged: ruleSteps.filter((s) => s.action === "keep").length,
        earlier: shiftOf(moved.filter((s) => s.shiftMs < 0).map((s) => -s.shiftMs)),
        later: shiftOf(moved.filter((s) => s.shiftMs > 0).map((s) => s.shiftMs)),
        cancelled: ruleSteps.filter((s) => s.action === "cancel").length,
        skipped: ruleSteps.filter((s) => s.action === "skip").length,
        reasons,
      };
    });
}

function shiftOf(amounts: readonly number[]): Shift {
  if (amounts.length === 0) return { count: 0 };
  return {
    count: amounts.length,
    smallest: duration(Math.min(...amounts)),
    largest: duration(Math.max(...amounts)),
  };
}

/** An ISO 8601 duration in days, hours and minutes (calendar months differ in length). */
function duration(ms: number): string {
  const parts = Duration.fromMillis(ms).shiftTo("days", "hours", "minutes", "seconds").toObject();
  const trimmed = Object.fromEntries(Object.entries(parts).filter(([, value]) => value !== 0));
  return Object.keys(trimmed).length === 0 ? "PT0S" : (Duration.fromObject(trimmed).toISO() ?? "");
}

/** The preview as text for people. */
export function renderPreviewText(rules: readonly RulePreview[], rulesVersion: string): string {
  if (rules.length === 0)
    return `No follow-ups waiting in the schedule; rules ${rulesVersion} would change nothing.\n`;
  const lines = [
    `What rules ${rulesVersion} would do to the follow-ups waiting in the schedule:`,
    "",
  ];
  for (const rule of rules) {
    const parts = [`${rule.unchanged} unchanged`];
    if (rule.earlier.count > 0)
      parts.push(
        `${rule.earlier.count} earlier (by ${rule.earlier.smallest} to ${rule.earlier.largest})`,
      );
    if (rule.later.count > 0)
      parts.push(`${rule.later.count} later (by ${rule.later.smallest} to ${rule.later.largest})`);
    if (rule.cancelled > 0) parts.push(`${rule.cancelled} cancelled`);
    if (rule.skipped > 0) parts.push(`${rule.skipped} skipped`);
    const reasons = Object.entries(rule.reasons).map(([code, n]) => `${code} ${n}`);
    lines.push(
      `  ${rule.ruleId}: ${parts.join(", ")}${reasons.length ? ` (${reasons.join(", ")})` : ""}`,
    );
  }
  lines.push("", "Nothing was changed. Workers apply new rules when they load them.");
  return `${lines.join("\n")}\n`;
}
