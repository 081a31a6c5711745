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

/**
 * Purchases the preview could not read (a stored purchase that cannot be decoded), which the
 * workers leave as planned: how many, and the event ids of the first UNREADABLE_LISTED.
 */
export interface UnreadablePurchases {
  readonly count: number;
  readonly eventIds: readonly string[];
}

/** How many unreadable purchases a preview names by event id. */
export const UNREADABLE_LISTED = 100;

/** One rule's running totals. */
interface Tally {
  unchanged: number;
  cancelled: number;
  skipped: number;
  reasons: Record<string, number>;
  earlier: { count: number; smallest: number; largest: number };
  later: { count: number; smallest: number; largest: number };
}

/**
 * Sums previewed steps per rule as they come, in one pass and constant memory per rule (a
 * schedule may hold millions of steps).
 */
export class PreviewTally {
  private readonly byRule = new Map<string, Tally>();
  private unreadableCount = 0;
  private readonly unreadableIds: string[] = [];

  /** A purchase with a waiting step whose stored purchase could not be read. */
  addUnreadable(eventId: string): void {
    this.unreadableCount++;
    if (this.unreadableIds.length < UNREADABLE_LISTED) this.unreadableIds.push(eventId);
  }

  /** The purchases that could not be read, in the order met. */
  unreadable(): UnreadablePurchases {
    return { count: this.unreadableCount, eventIds: [...this.unreadableIds] };
  }

  add(step: PreviewedStep): void {
    let tally = this.byRule.get(step.ruleId);
    if (!tally) {
      tally = {
        unchanged: 0,
        cancelled: 0,
        skipped: 0,
        reasons: {},
        earlier: { count: 0, smallest: Infinity, largest: 0 },
        later: { count: 0, smallest: Infinity, largest: 0 },
      };
      this.byRule.set(step.ruleId, tally);
    }
    if (step.code) tally.reasons[step.code] = (tally.reasons[step.code] ?? 0) + 1;
    // A step that keeps its due time (a new channel, or a late step's new grace end) stays.
    if (step.action === "keep" || (step.action === "move" && step.shiftMs === 0)) tally.unchanged++;
    else if (step.action === "cancel") tally.cancelled++;
    else if (step.action === "skip") tally.skipped++;
    else {
      const side = step.shiftMs < 0 ? tally.earlier : tally.later;
      const amount = Math.abs(step.shiftMs);
      side.count++;
      side.smallest = Math.min(side.smallest, amount);
      side.largest = Math.max(side.largest, amount);
    }
  }

  /** The totals per rule, sorted by rule id. */
  result(): RulePreview[] {
    return [...this.byRule.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([ruleId, tally]) => ({
        ruleId,
        unchanged: tally.unchanged,
        earlier: shiftOf(tally.earlier),
        later: shiftOf(tally.later),
        cancelled: tally.cancelled,
        skipped: tally.skipped,
        reasons: tally.reasons,
      }));
  }
}

/** Sums previewed steps per rule, sorted by rule id. */
export function previewByRule(steps: Iterable<PreviewedStep>): RulePreview[] {
  const tally = new PreviewTally();
  for (const step of steps) tally.add(step);
  return tally.result();
}

function shiftOf(side: Tally["earlier"]): Shift {
  if (side.count === 0) return { count: 0 };
  return {
    count: side.count,
    smallest: duration(side.smallest),
    largest: duration(side.largest),
  };
}

/** An ISO 8601 duration in days, hours, minutes and seconds (calendar months differ in length). */
function duration(ms: number): string {
  const parts = Duration.fromMillis(ms).shiftTo("days", "hours", "minutes", "seconds").toObject();
  const trimmed = Object.fromEntries(Object.entries(parts).filter(([, value]) => value !== 0));
  return Object.keys(trimmed).length === 0 ? "PT0S" : (Duration.fromObject(trimmed).toISO() ?? "");
}

/** What an operator is told of the purchases a preview could not read (none: nothing). */
export function unreadableNotice({ count, eventIds }: UnreadablePurchases): string {
  if (count === 0) return "";
  const one = count === 1;
  const listed = eventIds.length < count ? ` (the first ${eventIds.length})` : "";
  return `${count} purchase${one ? "" : "s"} could not be read (${one ? "its" : "their"} stored purchase cannot be decoded): not in the counts per rule; the workers leave ${one ? "its" : "their"} follow-ups as planned. Event id${one ? "" : "s"}${listed}: ${eventIds.join(", ")}\n`;
}

/** The preview as text for people. */
export function renderPreviewText(
  rules: readonly RulePreview[],
  rulesVersion: string,
  unreadable: UnreadablePurchases = { count: 0, eventIds: [] },
): string {
  const notice = unreadable.count > 0 ? `\n${unreadableNotice(unreadable)}` : "";
  if (rules.length === 0)
    return `Rules ${rulesVersion} would change nothing: no follow-up waiting in the schedule was planned under older rules.\n${notice}`;
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
  return `${lines.join("\n")}\n${notice}`;
}
